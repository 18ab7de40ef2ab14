using System.Buffers;
using System.Globalization;
using System.Text.Json;

namespace RunbookPortal.Engine.Runbooks;

/// <summary>Turns a YAML value (payloads, bodies) into JSON, typing plain scalars by the YAML 1.2 core schema.</summary>
internal static class YamlJson
{
    public static JsonElement ToJsonElement(YNode node)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true }))
            Write(writer, node);
        using var document = JsonDocument.Parse(buffer.WrittenMemory, new JsonDocumentOptions { MaxDepth = RunbookLimits.MaxDepth * 2 + 8 });
        return document.RootElement.Clone();
    }

    private static void Write(Utf8JsonWriter writer, YNode node)
    {
        switch (node)
        {
            case YMap map:
                writer.WriteStartObject();
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var entry in map.Entries)
                {
                    if (!seen.Add(entry.Key.Value))
                        continue;
                    writer.WritePropertyName(entry.Key.Value);
                    Write(writer, entry.Value);
                }
                writer.WriteEndObject();
                break;
            case YSeq sequence:
                writer.WriteStartArray();
                foreach (var item in sequence.Items)
                    Write(writer, item);
                writer.WriteEndArray();
                break;
            case YScalar scalar:
                WriteScalar(writer, scalar);
                break;
        }
    }

    private static void WriteScalar(Utf8JsonWriter writer, YScalar scalar)
    {
        var value = scalar.Value;
        if (!scalar.IsPlain)
        {
            writer.WriteStringValue(value);
        }
        else if (YamlScalars.IsNull(value))
        {
            writer.WriteNullValue();
        }
        else if (YamlScalars.IsBool(value))
        {
            writer.WriteBooleanValue(value[0] is 't' or 'T');
        }
        else if (YamlScalars.IsInteger(value) && long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
        {
            writer.WriteNumberValue(number);
        }
        else if (YamlScalars.IsFloat(value) && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var real) && double.IsFinite(real))
        {
            writer.WriteNumberValue(real);
        }
        else
        {
            writer.WriteStringValue(value);
        }
    }
}
