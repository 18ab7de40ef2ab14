using Bunit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Executions;

namespace RunbookPortal.Web.Tests.Components;

/// <summary>
/// The Running now board on a store of its own (SQLite) with the clock held: its rows, empty states and failures, the
/// elapsed times ticking without a reload, and a state change of a run showing without a reload of the page.
/// </summary>
public sealed class RunningNowComponentTests : PortalBunitContext
{
    private static readonly DateTime Now = new(2026, 12, 2, 10, 0, 0, DateTimeKind.Utc);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(Now));
    private readonly ExecutionNotifier _notifier;

    public RunningNowComponentTests()
    {
        _notifier = AddPortalStore();
        Services.AddSingleton<TimeProvider>(_time);
        Services.AddScoped<RunningNowQuery>();
    }

    private static Execution Run(string runbook, ExecutionStatus status, DateTime requestedAt, string? current = null, string? failed = null, string? reason = null,
        DateTime? finishedAt = null, Guid? approval = null)
    {
        var e = new Execution
        {
            Id = Guid.NewGuid(),
            RunbookVersionId = Guid.NewGuid(),
            RunbookName = runbook,
            Version = 3,
            Status = status,
            RequestedBy = "op@portal.test",
            RequestedAt = requestedAt,
            QueuedAt = requestedAt,
            StartedAt = status is ExecutionStatus.AwaitingApproval or ExecutionStatus.Queued ? null : requestedAt.AddSeconds(5),
            FinishedAt = finishedAt,
            ParametersJson = "{}",
            CurrentStepId = current,
            FailedStepId = failed,
            Reason = reason,
            ApprovalRequestId = approval,
        };
        string[] steps = ["prepare", "deploy", "verify"];
        e.Steps.AddRange(steps.Select((s, i) => new ExecutionStepRecord { ExecutionId = e.Id, StepId = s, Index = i, Name = $"Step {s}", Action = "shell" }));
        return e;
    }

    private Task SaveAsync(params Execution[] runs) => WithStoreAsync(async db =>
    {
        db.Executions.AddRange(runs);
        await db.SaveChangesAsync();
    });

    private Task UpdateAsync(Guid id, Action<Execution> change) => WithStoreAsync(async db =>
    {
        change(await db.Executions.FindAsync(id) ?? throw new InvalidOperationException("no such execution"));
        await db.SaveChangesAsync();
    });

    private static ExecutionEventRecord Event(Guid id, string kind, string? stepId = null) =>
        new() { ExecutionId = id, Seq = 1, At = Now, Kind = kind, StepId = stepId, DataJson = "{}" };

    private static string Text(AngleSharp.Dom.IElement e) => System.Text.RegularExpressions.Regex.Replace(e.TextContent, @"\s+", " ").Trim();

    [Fact]
    public void WithNothingRunningOrFailed_ItSaysSo()
    {
        var cut = Render<RunningNow>();

        cut.WaitForAssertion(() => Assert.Equal("Nothing is running right now.", cut.Find("[data-testid=running-empty]").TextContent));
        Assert.Equal("No run failed in the last 24 hours.", cut.Find("[data-testid=failures-empty]").TextContent);
        Assert.Empty(cut.FindAll("table"));
        Assert.Equal(["In progress", "Failed in the last 24 hours"], cut.FindAll("h2").Select(h => h.TextContent));
    }

    [Fact]
    public async Task ItListsTheRunsNotEnded_WithStatusStepElapsedAndLinks_AndTheFailuresOfTheLast24Hours()
    {
        var approval = Guid.NewGuid();
        var running = Run("web-deploy", ExecutionStatus.Running, Now.AddMinutes(-4).AddSeconds(-5), current: "deploy");
        var waiting = Run("db-maintenance", ExecutionStatus.WaitingForInput, Now.AddMinutes(-2), current: "verify");
        var gated = Run("prod-release", ExecutionStatus.AwaitingApproval, Now.AddMinutes(-1), approval: approval);
        var failed = Run("backup-nightly", ExecutionStatus.Failed, Now.AddHours(-3), failed: "deploy", reason: "exit code 3", finishedAt: Now.AddHours(-2));
        var interrupted = Run("scale-out", ExecutionStatus.Interrupted, Now.AddHours(-1), failed: "prepare", reason: "its node stopped", finishedAt: Now.AddMinutes(-30));
        var succeeded = Run("all-good", ExecutionStatus.Succeeded, Now.AddMinutes(-10), finishedAt: Now.AddMinutes(-9));
        var oldFailure = Run("long-ago", ExecutionStatus.Failed, Now.AddDays(-2), failed: "deploy", reason: "old", finishedAt: Now.AddHours(-25));
        var cancelled = Run("cancelled-run", ExecutionStatus.Cancelled, Now.AddMinutes(-10), finishedAt: Now.AddMinutes(-9));
        await SaveAsync(running, waiting, gated, failed, interrupted, succeeded, oldFailure, cancelled);

        var cut = Render<RunningNow>(p => p.Add(c => c.HeadingLevel, 3));

        cut.WaitForAssertion(() => Assert.Equal(3, cut.FindAll("[data-testid=running-table] tbody tr").Count));
        var rows = cut.FindAll("[data-testid=running-table] tbody tr");
        // Newest first.
        Assert.Equal([gated.Id, waiting.Id, running.Id], rows.Select(r => Guid.Parse(r.QuerySelector("[data-execution]")!.GetAttribute("data-execution")!)));
        Assert.Equal("prod-release v3", Text(rows[0].QuerySelector("a")!));
        Assert.Equal($"/executions/{gated.Id}", rows[0].QuerySelector("a")!.GetAttribute("href"));
        Assert.Equal(["AwaitingApproval", "WaitingForInput", "Running"], rows.Select(r => r.QuerySelector("[data-status]")!.GetAttribute("data-status")));
        Assert.Equal(["Waiting for approval", "Step verify (waiting for a person)", "Step deploy"], rows.Select(r => Text(r.QuerySelector("[data-testid=running-step]")!)));
        Assert.Equal(["1 min 00 s", "1 min 55 s", "4 min 00 s"], rows.Select(r => Text(r.QuerySelector("[data-testid=running-elapsed]")!)));
        Assert.Equal($"/approvals/{approval}", rows[0].QuerySelector("[data-testid=running-approval]")!.GetAttribute("href"));
        Assert.Null(rows[1].QuerySelector("[data-testid=running-approval]"));
        Assert.Contains("op@portal.test", rows[2].TextContent);

        var failures = cut.FindAll("[data-testid=failures-table] tbody tr");
        Assert.Equal([interrupted.Id, failed.Id], failures.Select(r => Guid.Parse(r.QuerySelector("[data-execution]")!.GetAttribute("data-execution")!)));
        Assert.Equal(["Step prepare", "Step deploy"], failures.Select(r => Text(r.QuerySelector("[data-testid=failure-step]")!)));
        Assert.Equal(["its node stopped", "exit code 3"], failures.Select(r => Text(r.QuerySelector("[data-testid=failure-reason]")!)));
        Assert.Equal($"/executions/{failed.Id}", failures[1].QuerySelector("a")!.GetAttribute("href"));
        Assert.Contains("2 h ago", failures[1].TextContent);
        Assert.Equal(["In progress", "Failed in the last 24 hours"], cut.FindAll("h3").Select(h => h.TextContent));
        Assert.DoesNotContain("all-good", cut.Markup);
        Assert.DoesNotContain("long-ago", cut.Markup);
        Assert.DoesNotContain("cancelled-run", cut.Markup);
    }

    [Fact]
    public async Task ElapsedTimesTickEverySecond()
    {
        var running = Run("web-deploy", ExecutionStatus.Running, Now.AddSeconds(-65), current: "deploy");
        await SaveAsync(running);
        var cut = Render<RunningNow>();
        cut.WaitForAssertion(() => Assert.Equal("1 min 00 s", Text(cut.Find("[data-testid=running-elapsed]"))));

        _time.Advance(TimeSpan.FromSeconds(1));
        cut.WaitForAssertion(() => Assert.Equal("1 min 01 s", Text(cut.Find("[data-testid=running-elapsed]"))));
        _time.Advance(TimeSpan.FromSeconds(1));
        cut.WaitForAssertion(() => Assert.Equal("1 min 02 s", Text(cut.Find("[data-testid=running-elapsed]"))));
    }

    [Fact]
    public async Task AStateChange_ShowsWithoutAReload_ARunThatStartsMovesOnAndFails()
    {
        var cut = Render<RunningNow>();
        cut.WaitForAssertion(() => cut.Find("[data-testid=running-empty]"));

        var run = Run("web-deploy", ExecutionStatus.Running, Now, current: "prepare");
        await SaveAsync(run);
        _notifier.Publish(Event(run.Id, EventKinds.ExecutionStarted));
        _time.Advance(RunningNow.MinReloadInterval);
        cut.WaitForAssertion(() => Assert.Equal("Step prepare", Text(cut.Find("[data-testid=running-step]"))));

        await UpdateAsync(run.Id, e => e.CurrentStepId = "deploy");
        _notifier.Publish(Event(run.Id, EventKinds.StepStarted, "deploy"));
        _time.Advance(RunningNow.MinReloadInterval);
        cut.WaitForAssertion(() => Assert.Equal("Step deploy", Text(cut.Find("[data-testid=running-step]"))));

        await UpdateAsync(run.Id, e =>
        {
            e.Status = ExecutionStatus.Failed;
            e.FailedStepId = "deploy";
            e.Reason = "exit code 3";
            e.CurrentStepId = null;
            e.FinishedAt = Now;
        });
        _notifier.Publish(Event(run.Id, EventKinds.ExecutionFinished));
        _time.Advance(RunningNow.MinReloadInterval);
        cut.WaitForAssertion(() => Assert.Equal("Nothing is running right now.", cut.Find("[data-testid=running-empty]").TextContent));
        Assert.Equal("Step deploy", Text(cut.Find("[data-testid=failure-step]")));
        Assert.Equal("exit code 3", Text(cut.Find("[data-testid=failure-reason]")));
    }

    [Fact]
    public void TheDashboard_ShowsRunningNow_AboveWhatToDoNext_ToSomeoneWithARole()
    {
        SignInAs("op@portal.test", "Operator");
        var cut = RenderWithAuth<RunbookPortal.Web.Features.Home.HomePage>();

        cut.WaitForAssertion(() => Assert.Equal("Nothing is running right now.", cut.Find("[data-testid=running-now] [data-testid=running-empty]").TextContent));
        Assert.Equal(["Running now", "What to do next"], cut.FindAll("h2").Select(h => h.TextContent.Trim()));
        Assert.Equal(["In progress", "Failed in the last 24 hours"], cut.FindAll("h3").Select(h => h.TextContent.Trim()));
        Assert.True(cut.Markup.IndexOf("data-testid=\"running-now\"", StringComparison.Ordinal) < cut.Markup.IndexOf("data-testid=\"next-steps\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheDashboard_ShowsNothingOfRunningNow_ToSomeoneWithoutARole()
    {
        SignInAs("nobody@portal.test");
        await SaveAsync(Run("web-deploy", ExecutionStatus.Running, Now, current: "deploy"));
        var cut = RenderWithAuth<RunbookPortal.Web.Features.Home.HomePage>();

        cut.WaitForAssertion(() => Assert.Contains("without a role", cut.Markup));
        Assert.Empty(cut.FindAll("[data-testid=running-now]"));
        Assert.Empty(cut.FindAll("[data-testid=recent-failures]"));
        Assert.DoesNotContain("Running now", cut.Markup);
        Assert.DoesNotContain("web-deploy", cut.Markup);
    }
}
