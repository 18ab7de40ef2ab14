using System.Globalization;
using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace RunbookPortal.Engine.Tests.Runbooks;

/// <summary>
/// Converts a YAML document to JSON the way a YAML language server does for schema validation: plain scalars are
/// typed by the YAML 1.2 core schema (null, true/false, decimal integers, floats), everything else is a string.
/// Independent of the validator's own reader, on purpose.
/// </summary>
public static partial class YamlToJson
{
    public static JToken Convert(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents.Count == 0 ? JValue.CreateNull() : Convert(stream.Documents[0].RootNode);
    }

    private static JToken Convert(YamlNode node) => node switch
    {
        YamlMappingNode mapping => new JObject(mapping.Children.Select(c => new JProperty(((YamlScalarNode)c.Key).Value ?? "", Convert(c.Value)))),
        YamlSequenceNode sequence => new JArray(sequence.Children.Select(Convert)),
        YamlScalarNode scalar => Scalar(scalar),
        _ => throw new NotSupportedException(node.GetType().Name),
    };

    private static JToken Scalar(YamlScalarNode scalar)
    {
        var value = scalar.Value ?? "";
        var isPlain = scalar.Style is ScalarStyle.Plain or ScalarStyle.Any && (scalar.Tag.IsEmpty || scalar.Tag.Value != "tag:yaml.org,2002:str");
        if (!isPlain)
            return new JValue(value);
        if (value is "" or "~" or "null" or "Null" or "NULL")
            return JValue.CreateNull();
        if (value is "true" or "True" or "TRUE")
            return new JValue(true);
        if (value is "false" or "False" or "FALSE")
            return new JValue(false);
        if (Integer().IsMatch(value) && long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
            return new JValue(number);
        if (Float().IsMatch(value) && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var real))
            return new JValue(real);
        return new JValue(value);
    }

    [GeneratedRegex("^[-+]?[0-9]+$")]
    private static partial Regex Integer();

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")]
    private static partial Regex Float();
}
