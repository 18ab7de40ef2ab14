using System.Buffers;
using System.Text;
using System.Text.Json;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>
/// Renders a structured body (an http step's YAML body, a lambda step's payload) as JSON: every string value has its
/// templates filled in and is then written as one JSON string, so a value never changes the document's structure
/// (quotes, backslashes, newlines and non-ASCII text are escaped by the writer). Keys and non-string values are kept as written.
/// </summary>
internal static class TemplatedJson
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    public static byte[] RenderUtf8(JsonElement body, StepTemplateValues values)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
            Write(writer, body, values);
        return buffer.WrittenSpan.ToArray();
    }

    public static string Render(JsonElement body, StepTemplateValues values) => Utf8.GetString(RenderUtf8(body, values));

    private static void Write(Utf8JsonWriter writer, JsonElement element, StepTemplateValues values)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var property in element.EnumerateObject())
                {
                    writer.WritePropertyName(property.Name);
                    Write(writer, property.Value, values);
                }
                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                    Write(writer, item, values);
                writer.WriteEndArray();
                break;
            case JsonValueKind.String:
                writer.WriteStringValue(values.Render(element.GetString()!));
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }
}
