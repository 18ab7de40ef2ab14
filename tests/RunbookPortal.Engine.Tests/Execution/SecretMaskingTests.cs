using System.Text.Json;
using RunbookPortal.Engine.Execution;

namespace RunbookPortal.Engine.Tests.Execution;

/// <summary>A secret value never reaches an event: output, outputs, reasons, rendered commands.</summary>
public sealed class SecretMaskingTests : ScratchFolder
{
    public static TheoryData<string> Secrets => ["s3cr3t-Value_42", "p@ss w0rd!&x=1"];

    [Theory]
    [MemberData(nameof(Secrets))]
    public async Task ASecret_AppearsInNoEvent_WhereverTheRunbookPutsIt(string secret)
    {
        await using var server = TestHttpServer.Answering(500, $$"""{ "echo": "{{secret}}" }""");
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: leak
              action: shell
              run: |
                echo "token is {{ token }}"
                echo "to stderr: $RBP_PARAM_TOKEN" >&2
                echo "value=$RBP_PARAM_TOKEN"
              outputs: { value: 'value=(.+)' }
              rollback:
                action: shell
                run: echo "undo with {{ token }}"
            - id: call
              action: http
              url: "SERVER?token={{ token }}"
              headers: { Authorization: "Bearer {{ token }}" }
              required: false
            - id: check
              action: shell
              run: echo {{ steps.leak.outputs.value }}
              validate: { output_contains: "{{ token }}-expected" }
            """.Replace("SERVER", server.Url, StringComparison.Ordinal), "token: { type: secret }");
        var plan = Engine.Plan(runbook, new Dictionary<string, string> { ["token"] = secret });

        var outcome = await Engine.Runner(Folder).RunAsync(plan, log, control, CancellationToken.None).WaitAsync(EventLog.Patience);
        var dryLog = new EventLog();
        await Engine.Runner(Folder).RunAsync(plan with { DryRun = true }, dryLog, control, CancellationToken.None).WaitAsync(EventLog.Patience);

        // The secret was really used…
        Assert.Equal(ExecutionStatus.Failed, outcome.Status);
        Assert.Equal("Bearer " + secret, Assert.Single(server.Requests).Headers["Authorization"]);
        Assert.Equal("token is ***\nvalue=***", log.Output("leak", "stdout"));
        Assert.Equal("to stderr: ***", log.Output("leak", "stderr"));
        Assert.Equal("***", log.All<StepSucceeded>().Single(s => s.StepId == "leak").Outputs["value"]);
        Assert.Equal("the output does not contain \"***-expected\"", log.All<StepFailed>().Single(f => f.StepId == "check").Reason);
        Assert.Equal("undo with ***", log.Output("leak.rollback"));
        Assert.Contains("***", dryLog.All<StepSkipped>()[0].Reason, StringComparison.Ordinal);

        // …and is in no event, in any form a reader could recover it from.
        var forbidden = new[] { secret, Uri.EscapeDataString(secret), JsonEncodedText.Encode(secret).Value };
        foreach (var e in log.Events.Concat(dryLog.Events))
        {
            var recorded = $"{e.Kind} {e.StepId} {e.Data().GetRawText()} {JsonSerializer.Serialize(e.Data())}";
            foreach (var form in forbidden)
                Assert.DoesNotContain(form, recorded, StringComparison.Ordinal);
        }
        Assert.Equal(outcome.Reason, log.All<ExecutionFinished>().Single().Reason);
        Assert.DoesNotContain(secret, outcome.Reason!, StringComparison.Ordinal);
    }

    [Fact]
    public void Masker_MasksTheFormsAStepCanWriteASecretIn_AndACutPreviewsStart()
    {
        const string secret = "it's a \"quoted\" Secret-9";
        var masker = new SecretMasker([secret]);

        Assert.Equal("json: {\"pw\":\"***\"}", masker.Apply("json: {\"pw\":\"" + JsonSerializer.Serialize(secret, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping })[1..^1] + "\"}"));
        Assert.Equal("escaped: ***", masker.Apply("escaped: " + JsonSerializer.Serialize(secret)[1..^1]));
        Assert.Equal("quoted: '***'", masker.Apply("quoted: '" + secret.Replace("'", @"'\''", StringComparison.Ordinal) + "'"));
        Assert.Equal("b64: ***", masker.Apply("b64: " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(secret))));
        Assert.Equal("url: ***", masker.Apply("url: " + Uri.EscapeDataString(secret)));
        // A 200-character preview cut inside the secret: its first characters before the ellipsis go too…
        Assert.Equal("output is \"xx ***…\", and validate expects", masker.Apply("output is \"xx " + secret[..9] + "…\", and validate expects"));
        // …but not a few characters that merely start like it, nor text without a cut.
        Assert.Equal("it's a …", masker.Apply("it's a …"));
        Assert.Equal("it's a \"quot", masker.Apply("it's a \"quot"));
    }

    [Fact]
    public async Task ADryRun_OfASecretWithAQuote_ShowsItMasked()
    {
        const string secret = "o'brien-S3cret";
        var log = new EventLog();
        using var control = new ExecutionControl();
        var runbook = Engine.Runbook("""
            - id: login
              action: shell
              run: login --password {{ token }}
            """, "token: { type: secret }");
        await Engine.Runner(Folder).RunAsync(Engine.Plan(runbook, new Dictionary<string, string> { ["token"] = secret }, dryRun: true), log, control, CancellationToken.None)
            .WaitAsync(EventLog.Patience);
        var shown = log.All<StepSkipped>().Single().Reason;
        Assert.Contains("login --password '***'", shown, StringComparison.Ordinal);
        Assert.DoesNotContain("brien", shown, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AValidateMessage_ThatCutsTheOutputInsideASecret_ShowsNoPartOfIt()
    {
        var secret = "Zq9-" + new string('k', 40);
        var log = new EventLog();
        using var control = new ExecutionControl();
        // 190 characters of output, then the secret: the 200-character preview ends 10 characters into it.
        var runbook = Engine.Runbook("""
            - id: check
              action: shell
              run: printf '{"a":"%s%s"}' "$(printf 'x%.0s' $(seq 1 190))" {{ token }}
              validate: { json: { path: "$.a", equals: nope } }
            """, "token: { type: secret }");
        await Engine.Runner(Folder).RunAsync(Engine.Plan(runbook, new Dictionary<string, string> { ["token"] = secret }), log, control, CancellationToken.None)
            .WaitAsync(EventLog.Patience);
        var reason = log.All<StepFailed>().Single().Reason;
        Assert.Contains("***…", reason, StringComparison.Ordinal); // the preview was cut inside the secret, and that start is masked
        Assert.DoesNotContain(secret[..8], reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Masker_MasksTheLongestSecretFirst_AndIgnoresEmptyValues()
    {
        var masker = new SecretMasker(["abc", "", "abcdef"]);

        Assert.Equal("*** *** x", masker.Apply("abcdef abc x"));
        Assert.Equal("nothing here", new SecretMasker([""]).Apply("nothing here"));
        Assert.True(new SecretMasker(["", ""]).IsEmpty);
    }

    [Fact]
    public void Masker_MasksEncodedForms_AndEachLineOfAMultiLineSecret()
    {
        var masker = new SecretMasker(["a b/c", "-----BEGIN KEY-----\nMIIEsecretbody\n-----END KEY-----"]);

        Assert.Equal("url ?x=***", masker.Apply("url ?x=a%20b%2Fc"));
        Assert.Equal("***", masker.Apply("MIIEsecretbody"));
    }

    [Fact]
    public void Masker_ForAPlan_MasksOnlySecretParameters()
    {
        var runbook = Engine.Runbook("""
            - id: a
              action: wait
              duration: 1s
            """, "password: { type: secret }\nuser: { type: string }");
        var masker = SecretMasker.For(Engine.Plan(runbook, new Dictionary<string, string> { ["password"] = "hunter2", ["user"] = "alice" }));

        Assert.Equal("alice:***", masker.Apply("alice:hunter2"));
    }
}
