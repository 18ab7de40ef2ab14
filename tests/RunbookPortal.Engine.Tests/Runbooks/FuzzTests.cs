using System.Diagnostics;
using System.Text;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Runbooks;

/// <summary>
/// Thousands of generated inputs: none may make the validator throw, take long, reach its last-resort catch or
/// report a position before 1:1. Seeds are fixed, so a failure is reproducible.
/// </summary>
public sealed class FuzzTests
{
    private static readonly TimeSpan SaneTime = TimeSpan.FromSeconds(5);
    private const string YamlAlphabet = "abcdefgh xyz_-0123456789:{}[],&*!|>'\"#%@`?~\n\n\n  \t\r.$\\/éß€😀\0\u0085\u2028\uFEFF";

    [Fact]
    public void RandomTexts_NeverBreakTheValidator()
    {
        var random = new Random(1001);
        for (var i = 0; i < 1500; i++)
        {
            var length = random.Next(0, i % 10 == 0 ? 4000 : 200);
            var builder = new StringBuilder(length);
            for (var j = 0; j < length; j++)
                builder.Append(YamlAlphabet[random.Next(YamlAlphabet.Length)]);
            AssertSurvives(builder.ToString(), $"random text #{i}");
        }
    }

    [Fact]
    public void RandomBytes_DecodedAnyWay_NeverBreakTheValidator()
    {
        var random = new Random(2002);
        for (var i = 0; i < 500; i++)
        {
            var bytes = new byte[random.Next(0, 600)];
            random.NextBytes(bytes);
            AssertSurvives(Encoding.UTF8.GetString(bytes), $"random UTF-8 bytes #{i}");
            AssertSurvives(Encoding.Latin1.GetString(bytes), $"random Latin-1 bytes #{i}");
            AssertSurvives(new string(MemoryMarshalChars(bytes)), $"random UTF-16 units #{i}");
        }
    }

    [Fact]
    public void MutationsOfTheCorpus_NeverBreakTheValidator()
    {
        var random = new Random(3003);
        var corpus = Corpus.ValidFiles.Concat(Corpus.InvalidFiles)
            .Where(f => !f.EndsWith("too-many-steps.yaml", StringComparison.Ordinal))
            .Select(Corpus.Read)
            .ToArray();
        for (var i = 0; i < 3000; i++)
        {
            var text = corpus[random.Next(corpus.Length)];
            var mutations = random.Next(1, 6);
            for (var m = 0; m < mutations; m++)
                text = Mutate(text, random);
            AssertSurvives(text, $"mutation #{i}");
        }
    }

    [Theory]
    [InlineData('[', ']')]
    [InlineData('{', '}')]
    public void DeepFlowNesting_IsRefusedWithADiagnostic(char open, char close)
    {
        foreach (var depth in new[] { 33, 100, 10_000, 200_000 })
        {
            var inner = open == '{' ? "a: 1" : "1";
            var prefix = open == '{' ? string.Concat(Enumerable.Repeat("{a: ", depth)) : new string(open, depth);
            var text = "apiVersion: runbooks/v1\npayload: " + prefix + inner + new string(close, depth) + "\n";
            var result = AssertSurvives(text, $"{open} nesting {depth}");
            Assert.Contains(result.Diagnostics, d => d.Message.Contains("deeper than 32 levels", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void DeepBlockNesting_IsRefusedWithADiagnostic()
    {
        var builder = new StringBuilder("steps:\n");
        for (var depth = 1; depth < 300; depth++)
            builder.Append(new string(' ', depth * 2)).Append("k").Append(depth).Append(":\n");
        var result = AssertSurvives(builder.ToString(), "block nesting");
        Assert.Contains(result.Diagnostics, d => d.Message.Contains("deeper than 32 levels", StringComparison.Ordinal));

        var dashes = "steps:\n" + string.Concat(Enumerable.Repeat("- ", 5000)) + "x\n";
        Assert.Contains(AssertSurvives(dashes, "nested block sequences").Diagnostics, d => d.Message.Contains("deeper than 32 levels", StringComparison.Ordinal));
    }

    [Fact]
    public void HugeScalars_AreFineUnderTheLimitAndRefusedOverIt()
    {
        var under = Minimal("description: \"" + new string('x', 900_000) + "\"\n");
        var underResult = AssertSurvives(under, "900 KB scalar");
        Assert.True(underResult.IsValid, CorpusTests.Describe(underResult.Diagnostics));

        var plainOver = Minimal("description: " + new string('y', 2 * 1024 * 1024) + "\n");
        var overResult = AssertSurvives(plainOver, "2 MB scalar");
        var diagnostic = Assert.Single(overResult.Diagnostics);
        Assert.Contains("at most 1 MiB", diagnostic.Message, StringComparison.Ordinal);

        AssertSurvives(new string('{', 2 * 1024 * 1024), "2 MB of braces");
        AssertSurvives(Minimal("description: |\n" + string.Concat(Enumerable.Repeat("  " + new string('z', 1000) + "\n", 1000))), "1 MB block scalar");
        AssertSurvives(Minimal("description: \"" + string.Concat(Enumerable.Repeat("{{ x }}", 100_000)) + "\"\n"), "100k templates");
        AssertSurvives("key" + new string('k', 500_000) + ": 1\n", "500 KB key");
    }

    [Fact]
    public void AliasBombs_AreRefusedWithoutExpansion()
    {
        // The classic billion laughs: nine levels of ten aliases each.
        var builder = new StringBuilder("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (var level = 1; level <= 9; level++)
            builder.Append($"a{level}: &a{level} [").Append(string.Join(", ", Enumerable.Repeat($"*a{level - 1}", 10))).Append("]\n");
        var result = AssertSurvives(builder.ToString(), "billion laughs");
        Assert.Contains(result.Diagnostics, d => d.Message.Contains("anchors and aliases are not supported", StringComparison.Ordinal));
        Assert.True(result.Diagnostics.Count <= RunbookLimits.MaxDiagnostics + 1);

        var manyAliases = "a: &a x\nb: [" + string.Join(",", Enumerable.Repeat("*a", 100_000)) + "]\n";
        Assert.Contains(AssertSurvives(manyAliases, "100k aliases").Diagnostics, d => d.Message.Contains("anchors and aliases", StringComparison.Ordinal));
        AssertSurvives("a: *undefined\n", "alias of an undefined anchor");
        AssertSurvives("a: &a\n  b: *a\n", "recursive alias");
    }

    [Fact]
    public void ManyProblems_AreCappedAtTheLimit()
    {
        var builder = new StringBuilder("apiVersion: runbooks/v1\nname: many\ntitle: Many\ntype: maintenance\nsteps:\n");
        for (var i = 0; i < 2000; i++)
            builder.Append($"  - {{ id: s{i}, action: wait, duration: soon, bogus{i}: 1 }}\n");
        var result = AssertSurvives(builder.ToString(), "many problems");

        Assert.Equal(RunbookLimits.MaxDiagnostics + 1, result.Diagnostics.Count);
        Assert.Contains(result.Diagnostics, d => d.Message.StartsWith("more than 200 problems", StringComparison.Ordinal));
    }

    [Fact]
    public void OddTextEncodings_AreRead()
    {
        var sample = RunbookSamples.All[0].Yaml;
        Assert.True(AssertSurvives(sample.Replace("\n", "\r\n", StringComparison.Ordinal), "CRLF").IsValid);
        Assert.True(AssertSurvives("\uFEFF" + sample, "byte order mark").IsValid);
        AssertSurvives(sample.Replace("\n", "\r", StringComparison.Ordinal), "CR only");
        AssertSurvives(sample.Replace("web-app-deploy", "web\0app", StringComparison.Ordinal), "NUL character");
        AssertSurvives(sample.Replace("team-web", "team-\uD800web", StringComparison.Ordinal), "lone surrogate");
        AssertSurvives(null!, "null");
    }

    private static string Minimal(string extra) =>
        "apiVersion: runbooks/v1\nname: fuzz\ntitle: Fuzz\ntype: maintenance\n" + extra + "steps:\n  - { id: one, action: wait, duration: 1s }\n";

    private static RunbookValidationResult AssertSurvives(string text, string what)
    {
        var stopwatch = Stopwatch.StartNew();
        RunbookValidationResult result;
        try
        {
            result = RunbookValidator.Validate(text);
        }
        catch (Exception exception)
        {
            Assert.Fail($"{what}: Validate threw {exception}\ninput: {Show(text)}");
            throw;
        }
        stopwatch.Stop();

        Assert.True(stopwatch.Elapsed < SaneTime, $"{what}: took {stopwatch.Elapsed}\ninput: {Show(text)}");
        Assert.NotNull(result.Diagnostics);
        Assert.True(result.IsValid == (result.Definition is not null), what);
        foreach (var diagnostic in result.Diagnostics)
        {
            Assert.True(diagnostic.Line >= 1 && diagnostic.Column >= 1, $"{what}: diagnostic at {diagnostic.Line}:{diagnostic.Column}\ninput: {Show(text)}");
            Assert.NotNull(diagnostic.Path);
            Assert.False(string.IsNullOrWhiteSpace(diagnostic.Message), what);
            Assert.False(diagnostic.Message.Contains("could not check this document", StringComparison.Ordinal),
                $"{what}: the last-resort catch was reached: {diagnostic.Message}\ninput: {Show(text)}");
        }
        return result;
    }

    private static string Show(string? text) => text is null ? "null" : text.Length <= 600 ? text : text[..600] + $"… ({text.Length} chars)";

    private static char[] MemoryMarshalChars(byte[] bytes)
    {
        var chars = new char[bytes.Length / 2];
        for (var i = 0; i < chars.Length; i++)
            chars[i] = (char)(bytes[2 * i] | bytes[2 * i + 1] << 8);
        return chars;
    }

    private static string Mutate(string text, Random random)
    {
        if (text.Length == 0)
            return YamlAlphabet[random.Next(YamlAlphabet.Length)].ToString();
        var lines = text.Split('\n').ToList();
        switch (random.Next(10))
        {
            case 0: // delete a line
                lines.RemoveAt(random.Next(lines.Count));
                return string.Join('\n', lines);
            case 1: // duplicate a line
            {
                var index = random.Next(lines.Count);
                lines.Insert(index, lines[index]);
                return string.Join('\n', lines);
            }
            case 2: // swap two lines
            {
                int a = random.Next(lines.Count), b = random.Next(lines.Count);
                (lines[a], lines[b]) = (lines[b], lines[a]);
                return string.Join('\n', lines);
            }
            case 3: // re-indent a line
            {
                var index = random.Next(lines.Count);
                lines[index] = new string(' ', random.Next(0, 9)) + lines[index].TrimStart();
                return string.Join('\n', lines);
            }
            case 4: // swap two adjacent characters
            {
                var at = random.Next(text.Length - 1 < 1 ? 1 : text.Length - 1);
                if (at + 1 >= text.Length)
                    return text;
                var chars = text.ToCharArray();
                (chars[at], chars[at + 1]) = (chars[at + 1], chars[at]);
                return new string(chars);
            }
            case 5: // delete a character
                return text.Remove(random.Next(text.Length), 1);
            case 6: // insert a YAML-significant character
                return text.Insert(random.Next(text.Length + 1), YamlAlphabet[random.Next(YamlAlphabet.Length)].ToString());
            case 7: // truncate
                return text[..random.Next(text.Length + 1)];
            case 8: // replace a word with a template, an alias or an anchor
            {
                var at = random.Next(text.Length);
                string[] snippets = ["{{ x }}", "{{ steps.a.outputs.b }}", "*a", "&a ", "!!str ", "~", "'", "\"", "{{", "}}", "- ", ": "];
                return text.Insert(at, snippets[random.Next(snippets.Length)]);
            }
            default: // duplicate a block of lines
            {
                var start = random.Next(lines.Count);
                var count = Math.Min(random.Next(1, 20), lines.Count - start);
                lines.InsertRange(start, lines.GetRange(start, count));
                return string.Join('\n', lines);
            }
        }
    }
}
