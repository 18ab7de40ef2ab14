using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Tests.Infrastructure;
using static RunbookPortal.Web.Tests.Integration.ExecutionApiTests;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// Shell steps through the real portal: a hostile secret in every place it could leak, a resumed run that gets the
/// real value of an output that held a secret, a cancelled step, and a hung rollback stopped by a second cancel.
/// </summary>
public abstract class ShellStepApiTests(PortalFixture fixture)
{
    private PortalFactory Portal => fixture.Portal;
    private HttpClient Admin => Portal.AdminClient();

    private static string Name(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..28];

    private static string Text(JsonElement e) => e.GetProperty("data").TryGetProperty("text", out var t) ? t.GetString() ?? "" : "";

    [Fact]
    public async Task AHostileSecret_AppearsNowhere_InDryRunsErrorsValidateMessagesOrResumedRuns_AndTheResumedStepGetsTheRealOutput()
    {
        var name = Name("secret");
        var flag = Path.Combine(Path.GetTempPath(), $"rbp-flag-{Guid.NewGuid():N}");
        // Quotes of both kinds, a dollar, a backslash, a newline and non-ASCII letters: every way a quoting can break.
        var secret = $"p'a\"s$s\\w\nörd-{Guid.NewGuid():N}";
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Secrets
            type: maintenance
            parameters:
              password: { type: secret, required: true }
              flag: { type: string, required: true }
            steps:
              - id: fetch
                action: shell
                run: printf 'BEGIN%sEND\n' {{ password }}
                outputs: { token: '(?s)BEGIN(.*)END' }
              - id: check
                action: shell
                run: |
                  test -f "$RBP_PARAM_FLAG" || { echo "not yet; the password is {{ password }}" >&2; exit 4; }
                  test {{ steps.fetch.outputs.token }} = {{ password }} && echo "the real token arrived"
                validate: { output_contains: the real token arrived }
              - id: preview
                action: shell
                required: false
                run: printf '%s\n' "a long line of output before the secret so that the preview is cut inside it ... {{ password }}"
                validate: { output_contains: never there }
            """, name);

        // A dry run shows what would run, the secret masked before it is quoted.
        var dry = await StartAsync(Admin, name, new { password = secret, flag }, dryRun: true);
        Assert.Equal("Succeeded", (await WaitForEndAsync(Admin, dry)).GetProperty("status").GetString());

        var id = await StartAsync(Admin, name, new { password = secret, flag });
        var failed = await WaitForEndAsync(Admin, id);
        Assert.Equal("Failed", failed.GetProperty("status").GetString());
        Assert.Equal("check", failed.GetProperty("failedStepId").GetString());

        await File.WriteAllTextAsync(flag, "");
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await Admin.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
            var done = await WaitForAsync(Admin, id, e => e.GetProperty("status").GetString() == "Succeeded");
            var events = await EventsAsync(Admin, id);
            Assert.Contains(events, e => e.GetProperty("stepId").GetString() == "check" && Text(e) == "the real token arrived");
            Assert.Contains(events, e => e.GetProperty("kind").GetString() == "step_failed" && e.GetProperty("stepId").GetString() == "preview");

            var shown = done.GetRawText() + string.Join("", events.Select(e => e.GetRawText()))
                + string.Join("", (await EventsAsync(Admin, dry)).Select(e => e.GetRawText()))
                + await Admin.GetStringAsync($"/api/executions/{dry}")
                + await Admin.GetStringAsync("/api/executions?pageSize=100")
                + await Admin.GetStringAsync("/api/audit?limit=1000");
            var stored = await Portal.WithServiceAsync<PortalDbContext, string>(async db =>
                string.Join("", await db.Executions.Select(e => e.ParametersJson + e.ProtectedSecrets + e.Reason).ToListAsync())
                + string.Join("", await db.ExecutionSteps.Select(s => s.OutputsJson + s.ProtectedOutputs + s.Error).ToListAsync())
                + string.Join("", await db.ExecutionEvents.Select(e => e.DataJson).ToListAsync())
                + string.Join("", await db.AuditRecords.Select(a => a.Details ?? "").ToListAsync()));
            var logs = string.Join("\n", Portal.Logs);
            foreach (var form in Forms(secret))
            {
                Assert.DoesNotContain(form, shown, StringComparison.Ordinal);
                Assert.DoesNotContain(form, stored, StringComparison.Ordinal);
                Assert.DoesNotContain(form, logs, StringComparison.Ordinal);
            }
            Assert.Contains("***", string.Join("", events.Where(e => e.GetProperty("stepId").GetString() == "fetch").Select(e => e.GetRawText())), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(flag);
        }
    }

    /// <summary>The secret as it could be written: raw, each of its lines, JSON-escaped both ways, shell-quoted, base64.</summary>
    private static IEnumerable<string> Forms(string secret)
    {
        yield return secret;
        foreach (var line in secret.Split('\n').Where(l => l.Length >= 8))
            yield return line;
        yield return JsonSerializer.Serialize(secret)[1..^1];
        yield return JsonSerializer.Serialize(secret, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping })[1..^1];
        yield return "'" + secret.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
        yield return Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(secret));
    }

    [Fact]
    public async Task ACancelledStep_EndsCancelled_SayingWho_AndASecondCancelStopsAHungRollback_TheRunEndingFailed()
    {
        var name = Name("hung");
        await PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Hung rollback
            type: maintenance
            steps:
              - id: first
                action: shell
                run: echo first
                rollback: { action: shell, run: echo "undo first" }
              - id: second
                action: shell
                run: echo second
                rollback:
                  action: shell
                  run: echo "undo second hangs"; sleep 300
              - id: long
                action: shell
                run: echo started; sleep 300
            """, name);
        var (operatorClient, operatorEmail, _) = await Portal.CreateUserAsync("operator", "Operator");
        var id = await StartAsync(operatorClient, name, new { });
        await WaitForAsync(Admin, id, e => e.GetProperty("steps")[2].GetProperty("status").GetString() == "Running");
        var printed = DateTime.UtcNow.AddSeconds(30);
        while (!(await EventsAsync(Admin, id)).Any(e => Text(e) == "started")) // running is not yet printed: cancel once it printed
        {
            Assert.True(DateTime.UtcNow < printed, "the step 'long' did not print");
            await Task.Delay(50);
        }

        Assert.Equal(HttpStatusCode.OK, (await operatorClient.PostAsJsonAsync($"/api/executions/{id}/cancel", new { rollback = true })).StatusCode);
        var rolling = await WaitForAsync(Admin, id, e => e.GetProperty("status").GetString() == "RollingBack"
            && e.GetProperty("steps")[2].GetProperty("status").GetString() == "Cancelled");
        Assert.Equal($"cancelled by {operatorEmail}; stopped with SIGTERM", rolling.GetProperty("steps")[2].GetProperty("error").GetString());
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!(await EventsAsync(Admin, id)).Any(e => Text(e) == "undo second hangs"))
        {
            Assert.True(DateTime.UtcNow < deadline, "the rollback of 'second' did not start");
            await Task.Delay(50);
        }

        // The second cancel: the hung rollback is stopped, 'first' is not rolled back, and the run ends Failed.
        Assert.Equal(HttpStatusCode.OK, (await Admin.PostAsJsonAsync($"/api/executions/{id}/cancel", new { })).StatusCode);
        var done = await WaitForEndAsync(Admin, id, seconds: 20);
        Assert.Equal("Failed", done.GetProperty("status").GetString());
        var steps = done.GetProperty("steps");
        Assert.Equal("RollbackFailed", steps[1].GetProperty("status").GetString());
        Assert.Equal("Succeeded", steps[0].GetProperty("status").GetString()); // never rolled back
        Assert.Contains($"the rollback was cancelled by {PortalFactory.AdminEmail}, so 'first' was not rolled back", done.GetProperty("reason").GetString(), StringComparison.Ordinal);

        var events = await EventsAsync(Admin, id);
        Assert.Contains(events, e => e.GetProperty("kind").GetString() == "execution_rollback_stop_requested");
        Assert.Contains(events, e => e.GetProperty("kind").GetString() == "step_cancelled" && e.GetProperty("stepId").GetString() == "long");
        // The step's log is what the step wrote: no "Killed", no command line of the portal's own.
        Assert.Equal(["started"], events.Where(e => e.GetProperty("kind").GetString() == "step_output" && e.GetProperty("stepId").GetString() == "long").Select(Text));
        Assert.DoesNotContain(events, e => e.GetProperty("kind").GetString() == "step_output" && e.GetProperty("data").GetProperty("stream").GetString() == "stderr");
    }
}

public sealed class SqliteShellStepApiTests(SqliteEngineFixture fixture) : ShellStepApiTests(fixture), IClassFixture<SqliteEngineFixture>;

public sealed class PostgresShellStepApiTests(PostgresEngineFixture fixture) : ShellStepApiTests(fixture), IClassFixture<PostgresEngineFixture>;
