using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// The approval gate through the REST API, with the real worker and real bash steps, on both stores: quorum,
/// rejection, expiry, the requester and every other role refused, no way around it, concurrent approvers.
/// Each gated runbook's step touches a marker file, so "nothing ran" is proven on disk.
/// </summary>
public abstract class ApprovalApiTests(PortalFixture fixture) : IDisposable
{
    private PortalFactory Portal => fixture.Portal;
    private HttpClient Admin => Portal.AdminClient();
    private readonly string _markers = Directory.CreateTempSubdirectory("rbp-gate-").FullName;

    public void Dispose()
    {
        Directory.Delete(_markers, recursive: true);
        GC.SuppressFinalize(this);
    }

    private static string Name(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..28];

    /// <summary>
    /// A runbook that needs <paramref name="approvals"/> approvals for production; its first step writes a marker file
    /// named after the run's tag, its second writes the optional secret <c>token</c> to <c>tag.token</c>.
    /// </summary>
    internal static string GatedYaml(string name, string markers, int approvals = 2, string? expires = null, string role = "Approver") => $$$"""
        apiVersion: runbooks/v1
        name: {{{name}}}
        title: Gated deploy
        type: deployment
        prerequisites: [Build is green]
        parameters:
          environment: { type: string, required: true, allowed: [staging, production] }
          tag: { type: string, required: true, pattern: '^[a-z0-9]+$' }
          token: { type: secret }
        approval:
          required_approvals: {{{approvals}}}
          approver_role: {{{role}}}
          when: { environment: production }
        {{{(expires is null ? "" : $"  expires_after: {expires}")}}}
        concurrency: { key: "{{ tag }}", limit: 1 }
        steps:
          - id: deploy
            name: Deploy
            action: shell
            run: touch {{{markers}}}/{{ tag }}
            rollback:
              action: shell
              run: touch {{{markers}}}/{{ tag }}.undone
          - id: verify
            name: Verify
            action: shell
            run: printf %s {{ token }} > {{{markers}}}/{{ tag }}.token
        """;

    private async Task<(string Name, HttpClient Operator, string OperatorEmail)> GatedAsync(int approvals = 2, string? expires = null)
    {
        var name = Name("gate");
        await ExecutionApiTests.PublishAsync(Portal, GatedYaml(name, _markers, approvals, expires), name);
        var (op, email, _) = await Portal.CreateUserAsync("operator", "Operator");
        return (name, op, email);
    }

    private async Task<Guid> ApprovalIdAsync(Guid executionId)
    {
        var pending = await Admin.GetFromJsonAsync<JsonElement>("/api/approvals?status=all");
        return pending.EnumerateArray().Single(a => a.GetProperty("executionId").GetGuid() == executionId).GetProperty("id").GetGuid();
    }

    private static Task<HttpResponseMessage> ApproveAsync(HttpClient client, Guid approvalId, string? comment = null) =>
        client.PostAsJsonAsync($"/api/approvals/{approvalId}/approve", new { comment });

    private static Task<HttpResponseMessage> RejectAsync(HttpClient client, Guid approvalId, string? comment) =>
        client.PostAsJsonAsync($"/api/approvals/{approvalId}/reject", new { comment });

    private static async Task<string> StatusAsync(HttpClient client, Guid id) =>
        (await client.GetFromJsonAsync<JsonElement>($"/api/executions/{id}")).GetProperty("status").GetString()!;

    [Fact]
    public async Task QuorumOfTwo_OneApprovalKeepsItWaiting_TheSecondQueuesIt_AndItRuns()
    {
        var (name, op, opEmail) = await GatedAsync();
        var (first, firstEmail, _) = await Portal.CreateUserAsync("approver", "Approver");
        var (second, _, _) = await Portal.CreateUserAsync("approver", "Approver");

        var id = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "quorum" });
        Assert.Equal("AwaitingApproval", await StatusAsync(op, id));
        var approvalId = await ApprovalIdAsync(id);

        var listed = (await first.GetFromJsonAsync<JsonElement>("/api/approvals?status=pending")).EnumerateArray().Single(a => a.GetProperty("id").GetGuid() == approvalId);
        Assert.Equal(name, listed.GetProperty("runbook").GetString());
        Assert.Equal(1, listed.GetProperty("version").GetInt32());
        Assert.Equal(opEmail, listed.GetProperty("requestedBy").GetString());
        Assert.Equal(2, listed.GetProperty("requiredApprovals").GetInt32());
        Assert.Equal("Pending", listed.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, listed.GetProperty("expiresAt").ValueKind);

        Assert.Equal(HttpStatusCode.OK, (await ApproveAsync(first, approvalId, "looks right")).StatusCode);
        // The same person again counts once.
        var again = await ApproveAsync(first, approvalId);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        var afterOne = await again.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("Pending", afterOne.GetProperty("status").GetString());
        var approval = Assert.Single(afterOne.GetProperty("approvals").EnumerateArray());
        Assert.Equal(firstEmail, approval.GetProperty("by").GetString());
        Assert.Equal("looks right", approval.GetProperty("comment").GetString());
        Assert.Equal("AwaitingApproval", await StatusAsync(op, id));
        Assert.False(File.Exists(Path.Combine(_markers, "quorum")));

        Assert.Equal(HttpStatusCode.OK, (await ApproveAsync(second, approvalId)).StatusCode);
        var done = await ExecutionApiTests.WaitForEndAsync(op, id);
        Assert.Equal("Succeeded", done.GetProperty("status").GetString());
        Assert.True(File.Exists(Path.Combine(_markers, "quorum")));
        var decided = await first.GetFromJsonAsync<JsonElement>($"/api/approvals/{approvalId}");
        Assert.Equal("Approved", decided.GetProperty("request").GetProperty("status").GetString());

        var kinds = (await ExecutionApiTests.EventsAsync(op, id)).Select(e => e.GetProperty("kind").GetString()).ToList();
        Assert.Equal(["execution_awaiting_approval", "execution_approval_recorded", "execution_approved", "execution_queued", "execution_claimed"], kinds.Take(5));

        var audit = await Admin.GetFromJsonAsync<JsonElement>("/api/audit?action=execution.approved");
        Assert.True(audit.GetRawText().Split(approvalId.ToString()).Length - 1 >= 2, "each approval is audited");
    }

    [Fact]
    public async Task Staging_NeedsNoApproval_AndADryRunOfProductionNeitherRunsNorWaits()
    {
        var (name, op, _) = await GatedAsync();
        var staging = await ExecutionApiTests.StartAsync(op, name, new { environment = "staging", tag = "staging" });
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(op, staging)).GetProperty("status").GetString());
        var dry = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "dry" }, dryRun: true);
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(op, dry)).GetProperty("status").GetString());
        Assert.False(File.Exists(Path.Combine(_markers, "dry")));
    }

    [Fact]
    public async Task ARejection_EndsItRejected_NeedsAComment_AndNothingRuns()
    {
        var (name, op, _) = await GatedAsync();
        var (approver, approverEmail, _) = await Portal.CreateUserAsync("approver", "Approver");
        var id = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "rejected" });
        var approvalId = await ApprovalIdAsync(id);

        var bare = await RejectAsync(approver, approvalId, "  ");
        Assert.Equal(HttpStatusCode.BadRequest, bare.StatusCode);
        Assert.Contains("comment is required", await bare.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.OK, (await RejectAsync(approver, approvalId, "wrong tag <script>alert(1)</script>")).StatusCode);
        var done = await ExecutionApiTests.WaitForEndAsync(op, id);
        Assert.Equal("Rejected", done.GetProperty("status").GetString());
        Assert.Contains(approverEmail, done.GetProperty("reason").GetString());
        var request = (await approver.GetFromJsonAsync<JsonElement>($"/api/approvals/{approvalId}")).GetProperty("request");
        Assert.Equal("Rejected", request.GetProperty("status").GetString());
        Assert.Equal("wrong tag <script>alert(1)</script>", request.GetProperty("rejection").GetProperty("comment").GetString());

        // Decided is decided: a late approval and any way of running it are refused.
        var (late, _, _) = await Portal.CreateUserAsync("approver", "Approver");
        Assert.Equal(HttpStatusCode.Conflict, (await ApproveAsync(late, approvalId)).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/executions/{id}/rollback", new { })).StatusCode);
        Assert.False(File.Exists(Path.Combine(_markers, "rejected")));
        var rejected = await approver.GetFromJsonAsync<JsonElement>("/api/approvals?status=rejected");
        Assert.Contains(rejected.EnumerateArray(), a => a.GetProperty("id").GetGuid() == approvalId);
    }

    [Fact]
    public async Task TheRequester_AndEveryoneWithoutTheApproverRole_AreRefused403_ThroughTheirTokens()
    {
        var (name, op, _) = await GatedAsync(approvals: 1);
        var id = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "roles" });
        var approvalId = await ApprovalIdAsync(id);

        var own = await ApproveAsync(op, approvalId);
        Assert.Equal(HttpStatusCode.Forbidden, own.StatusCode);
        Assert.Contains("You requested this run", await own.Content.ReadAsStringAsync());

        // An approver who requested a run cannot approve it either.
        var (approverRequester, _, _) = await Portal.CreateUserAsync("self", "Approver", "Operator");
        var selfId = await ExecutionApiTests.StartAsync(approverRequester, name, new { environment = "production", tag = "self" });
        var self = await ApproveAsync(approverRequester, await ApprovalIdAsync(selfId));
        Assert.Equal(HttpStatusCode.Forbidden, self.StatusCode);
        Assert.Contains("You requested this run", await self.Content.ReadAsStringAsync());

        var others = new List<HttpClient> { Admin }; // an Admin counts only with the approver role (README)
        foreach (var role in new[] { "Operator", "Author", "Auditor" })
            others.Add((await Portal.CreateUserAsync(role.ToLowerInvariant(), role)).Client);
        others.Add((await Portal.CreateUserAsync("nobody")).Client);
        foreach (var client in others)
        {
            Assert.Equal(HttpStatusCode.Forbidden, (await ApproveAsync(client, approvalId)).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await RejectAsync(client, approvalId, "no")).StatusCode);
        }
        Assert.Equal("AwaitingApproval", await StatusAsync(op, id));
        Assert.False(File.Exists(Path.Combine(_markers, "roles")));

        // An Admin who also holds the role does count.
        var (adminApprover, _, _) = await Portal.CreateUserAsync("admin-approver", "Admin", "Approver");
        Assert.Equal(HttpStatusCode.OK, (await ApproveAsync(adminApprover, approvalId)).StatusCode);
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(op, id)).GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await ApproveAsync(adminApprover, Guid.NewGuid())).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await Admin.GetAsync("/api/approvals?status=maybe")).StatusCode);
    }

    [Fact]
    public async Task TheBypassIsClosed_CancelThenResume_Resume_AndRollback_OfANeverApprovedRun_AreRefused_AndNothingRuns()
    {
        var (name, op, _) = await GatedAsync();
        var (approver, _, _) = await Portal.CreateUserAsync("approver", "Approver");
        var id = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "bypass" });
        var approvalId = await ApprovalIdAsync(id);

        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/executions/{id}/rollback", new { })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/executions/{id}/cancel", new { })).StatusCode);
        Assert.Equal("Cancelled", await StatusAsync(op, id));

        foreach (var client in new[] { op, Admin })
        {
            var resume = await client.PostAsJsonAsync($"/api/executions/{id}/resume", new { fromStep = "deploy", force = true });
            Assert.Equal(HttpStatusCode.Conflict, resume.StatusCode);
            Assert.Contains("did not pass its approval", await resume.Content.ReadAsStringAsync());
            Assert.Equal(HttpStatusCode.Conflict, (await client.PostAsJsonAsync($"/api/executions/{id}/rollback", new { })).StatusCode);
        }
        // The closed request takes no more approvals either.
        Assert.Equal(HttpStatusCode.Conflict, (await ApproveAsync(approver, approvalId)).StatusCode);

        // Give the worker passes to misbehave in, then prove it never ran.
        var later = await ExecutionApiTests.StartAsync(op, name, new { environment = "staging", tag = "after" });
        await ExecutionApiTests.WaitForEndAsync(op, later);
        Assert.Equal("Cancelled", await StatusAsync(op, id));
        Assert.False(File.Exists(Path.Combine(_markers, "bypass")));
        Assert.DoesNotContain((await ExecutionApiTests.EventsAsync(op, id)).Select(e => e.GetProperty("kind").GetString()), k => k is "execution_claimed" or "step_started");
    }

    [Fact]
    public async Task TwoApproversAtTheSameInstant_RepeatedMany_GiveExactlyOneStart()
    {
        var (name, op, _) = await GatedAsync();
        var approvers = new List<HttpClient>();
        for (var i = 0; i < 3; i++)
            approvers.Add((await Portal.CreateUserAsync("racer", "Approver")).Client);

        for (var round = 0; round < 8; round++)
        {
            var id = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = $"race{round}" });
            var approvalId = await ApprovalIdAsync(id);
            // Three at once for a quorum of two: whoever loses either counts toward it or is told it is decided.
            var answers = await Task.WhenAll(approvers.Select(a => ApproveAsync(a, approvalId)));
            Assert.All(answers, r => Assert.True(r.StatusCode is HttpStatusCode.OK or HttpStatusCode.Conflict, r.StatusCode.ToString()));
            Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(op, id)).GetProperty("status").GetString());
            var kinds = (await ExecutionApiTests.EventsAsync(op, id)).Select(e => e.GetProperty("kind").GetString()).ToList();
            Assert.Equal(1, kinds.Count(k => k == "execution_approved"));
            Assert.Equal(1, kinds.Count(k => k == "execution_queued"));
            Assert.Equal(1, kinds.Count(k => k == "execution_claimed"));
            Assert.Equal(2, kinds.Count(k => k == "step_started")); // deploy and verify, once each
            var request = (await op.GetFromJsonAsync<JsonElement>($"/api/approvals/{approvalId}")).GetProperty("request");
            Assert.InRange(request.GetProperty("approvals").GetArrayLength(), 2, 3);
        }
    }

    [Fact]
    public async Task AGatedRunWithoutAnApprovalRecord_AsFromBeforeApprovalsWereRecorded_CanNeitherBeResumedNorRun()
    {
        var (name, op, _) = await GatedAsync();
        var template = await ExecutionApiTests.StartAsync(op, name, new { environment = "staging", tag = "template" });
        await ExecutionApiTests.WaitForEndAsync(op, template);
        // Rows as an older portal left them: production runs with no approval request, one waiting, one queued.
        var (waitingId, queuedId) = await Portal.WithServiceAsync<PortalDbContext, (Guid, Guid)>(async db =>
        {
            var row = await db.Executions.AsNoTracking().FirstAsync(e => e.Id == template);
            Execution Legacy(ExecutionStatus status, string tag) => new()
            {
                Id = Guid.NewGuid(), RunbookVersionId = row.RunbookVersionId, RunbookName = row.RunbookName, Version = row.Version, Status = status,
                RequestedBy = row.RequestedBy, RequestedAt = DateTime.UtcNow, QueuedAt = status == ExecutionStatus.Queued ? DateTime.UtcNow : null,
                ParametersJson = JsonSerializer.Serialize(new Dictionary<string, string> { ["environment"] = "production", ["tag"] = tag }),
                Steps = [new ExecutionStepRecord { StepId = "deploy", Name = "Deploy", Action = "shell", Index = 0 }, new ExecutionStepRecord { StepId = "verify", Name = "Verify", Action = "shell", Index = 1 }],
            };
            var waiting = Legacy(ExecutionStatus.AwaitingApproval, "legacywait");
            var queued = Legacy(ExecutionStatus.Queued, "legacyqueued");
            db.Executions.AddRange(waiting, queued);
            await db.SaveChangesAsync();
            return (waiting.Id, queued.Id);
        });

        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/executions/{waitingId}/cancel", new { })).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/executions/{waitingId}/resume", new { })).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/executions/{waitingId}/rollback", new { })).StatusCode);
        // The worker claims the queued one (an ungated row) but refuses to run it.
        Portal.Services.GetRequiredService<ExecutionNotifier>().WorkQueued();
        var refused = await ExecutionApiTests.WaitForEndAsync(op, queuedId);
        Assert.Equal("Failed", refused.GetProperty("status").GetString());
        Assert.Contains("did not pass its approval", refused.GetProperty("reason").GetString());
        Assert.False(File.Exists(Path.Combine(_markers, "legacywait")));
        Assert.False(File.Exists(Path.Combine(_markers, "legacyqueued")));
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/executions/{queuedId}/resume", new { })).StatusCode);
    }

    [Fact]
    public async Task AQueuedRun_WhoseApprovalIsPendingOrRejected_IsNeverClaimed_ThroughManyWorkerPasses()
    {
        var (name, op, _) = await GatedAsync();
        var (approver, _, _) = await Portal.CreateUserAsync("approver", "Approver");
        var pending = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "forcedpending" });
        var rejected = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "forcedrejected" });
        var pendingApproval = await ApprovalIdAsync(pending);
        Assert.Equal(HttpStatusCode.OK, (await RejectAsync(approver, await ApprovalIdAsync(rejected), "not today")).StatusCode);
        Assert.Equal("Rejected", await StatusAsync(op, rejected));

        // Both rows put back to Queued behind the gate's back (a bug elsewhere, a hand-edited database): only the
        // worker's claim filter (and its re-check before the first step) stands between them and their steps.
        var ids = new[] { pending, rejected };
        Assert.Equal(2, await Portal.WithServiceAsync<PortalDbContext, int>(db => db.Executions.Where(e => ids.Contains(e.Id))
            .ExecuteUpdateAsync(s => s.SetProperty(e => e.Status, ExecutionStatus.Queued).SetProperty(e => e.QueuedAt, DateTime.UtcNow))));

        // Claim passes run here, one after another (the background worker's own passes go on besides); after each,
        // the rows are still Queued and their events hold no claim.
        var worker = Portal.Services.GetRequiredService<ExecutionWorker>();
        for (var pass = 0; pass < 5; pass++)
        {
            await worker.ClaimAndStartAsync(CancellationToken.None);
            foreach (var id in ids)
            {
                Assert.Equal("Queued", await StatusAsync(op, id));
                Assert.DoesNotContain((await ExecutionApiTests.EventsAsync(op, id)).Select(e => e.GetProperty("kind").GetString()), k => k is "execution_claimed" or "step_started");
            }
        }
        Assert.False(File.Exists(Path.Combine(_markers, "forcedpending")));
        Assert.False(File.Exists(Path.Combine(_markers, "forcedrejected")));

        // The control: granted, the same row is claimed by the next pass and runs, so the passes above could have claimed it.
        await Portal.WithServiceAsync<PortalDbContext, int>(db => db.ApprovalRequests.Where(a => a.Id == pendingApproval)
            .ExecuteUpdateAsync(s => s.SetProperty(a => a.Status, ApprovalStatus.Approved)));
        await worker.ClaimAndStartAsync(CancellationToken.None);
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(op, pending)).GetProperty("status").GetString());
        Assert.True(File.Exists(Path.Combine(_markers, "forcedpending")));
        Assert.Equal("Queued", await StatusAsync(op, rejected));
        Assert.False(File.Exists(Path.Combine(_markers, "forcedrejected")));
        Assert.DoesNotContain((await ExecutionApiTests.EventsAsync(op, rejected)).Select(e => e.GetProperty("kind").GetString()), k => k == "execution_claimed");
    }

    [Fact]
    public async Task AnApprovedRun_WhoseValuesOrVersionChangeAfterTheApproval_IsRefusedBeforeAnyStep()
    {
        var (name, op, _) = await GatedAsync(approvals: 1);
        var (approver, _, _) = await Portal.CreateUserAsync("approver", "Approver");
        // A runbook with the same steps that someone would rather run under the approval.
        var swap = Name("swap");
        await ExecutionApiTests.PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{swap}}}
            title: Not what was approved
            type: deployment
            parameters:
              environment: { type: string, required: true }
              tag: { type: string, required: true }
            steps:
              - id: deploy
                action: shell
                run: touch {{{_markers}}}/swapped
              - id: verify
                action: shell
                run: "true"
            """, swap);
        // Another node holds the key of both runs (their tag), so once approved they wait, Queued, while their rows change.
        var blocker = await Portal.WithServiceAsync<PortalDbContext, Guid>(async db =>
        {
            var version = await db.RunbookVersions.AsNoTracking().FirstAsync(v => v.Runbook!.Name == name);
            var row = new Execution
            {
                Id = Guid.NewGuid(), RunbookVersionId = version.Id, RunbookName = name, Version = 1, Status = ExecutionStatus.Running, RequestedBy = "someone",
                RequestedAt = DateTime.UtcNow, StartedAt = DateTime.UtcNow, ParametersJson = "{}", ConcurrencyKey = "bound", ConcurrencyLimit = 1,
                LeaseOwner = "another-node#claim", LeaseExpiresAt = DateTime.UtcNow.AddMinutes(10),
            };
            db.Executions.Add(row);
            await db.SaveChangesAsync();
            return row.Id;
        });
        var values = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "bound" });
        var version = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "bound" });
        foreach (var id in new[] { values, version })
        {
            Assert.Equal(HttpStatusCode.OK, (await ApproveAsync(approver, await ApprovalIdAsync(id))).StatusCode);
            Assert.Equal("Queued", await StatusAsync(op, id));
        }

        await Portal.WithServiceAsync<PortalDbContext, int>(async db =>
        {
            var swapped = await db.RunbookVersions.AsNoTracking().Where(v => v.Runbook!.Name == swap).Select(v => v.Id).FirstAsync();
            var tampered = JsonSerializer.Serialize(new Dictionary<string, string> { ["environment"] = "production", ["tag"] = "tampered" });
            return await db.Executions.Where(e => e.Id == values).ExecuteUpdateAsync(s => s.SetProperty(e => e.ParametersJson, tampered))
                + await db.Executions.Where(e => e.Id == version).ExecuteUpdateAsync(s => s.SetProperty(e => e.RunbookVersionId, swapped));
        });
        // The key comes free: both are claimed in turn, and refused before their first step.
        await Portal.WithServiceAsync<PortalDbContext, int>(db => db.Executions.Where(e => e.Id == blocker)
            .ExecuteUpdateAsync(s => s.SetProperty(e => e.Status, ExecutionStatus.Succeeded).SetProperty(e => e.LeaseOwner, (string?)null).SetProperty(e => e.LeaseExpiresAt, (DateTime?)null)));
        Portal.Services.GetRequiredService<ExecutionNotifier>().WorkQueued();
        foreach (var id in new[] { values, version })
        {
            var refused = await ExecutionApiTests.WaitForEndAsync(op, id);
            Assert.Equal("Failed", refused.GetProperty("status").GetString());
            Assert.Contains("did not pass its approval", refused.GetProperty("reason").GetString());
            Assert.DoesNotContain((await ExecutionApiTests.EventsAsync(op, id)).Select(e => e.GetProperty("kind").GetString()), k => k == "step_started");
            Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
        }
        foreach (var marker in new[] { "tampered", "bound", "swapped" })
            Assert.False(File.Exists(Path.Combine(_markers, marker)), marker);
    }

    [Fact]
    public async Task TheList_ByScopeAndStatus_ShowsMyRequests_WhatWaitsForMyDecision_AndEachStatus()
    {
        var (name, op, opEmail) = await GatedAsync();
        var (otherOp, otherEmail, _) = await Portal.CreateUserAsync("operator", "Operator");
        var (approver, _, _) = await Portal.CreateUserAsync("approver", "Approver");
        var (approverOp, _, _) = await Portal.CreateUserAsync("approver-op", "Approver", "Operator");

        Task<Guid> Start(HttpClient client, string tag) => ExecutionApiTests.StartAsync(client, name, new { environment = "production", tag });
        var waiting = await Start(op, "scopewaiting");           // pending, no decision yet
        var halfway = await Start(op, "scopehalfway");           // pending, 1 of 2: the approver has decided
        var rejected = await Start(op, "scoperejected");
        var cancelled = await Start(op, "scopecancelled");
        var approved = await Start(op, "scopeapproved");
        var others = await Start(otherOp, "scopeothers");        // another operator's, pending
        var own = await Start(approverOp, "scopeown");           // an approver's own request, pending
        Assert.Equal(HttpStatusCode.OK, (await ApproveAsync(approver, await ApprovalIdAsync(halfway))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await RejectAsync(approver, await ApprovalIdAsync(rejected), "wrong window")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/executions/{cancelled}/cancel", new { })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await ApproveAsync(approver, await ApprovalIdAsync(approved))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await ApproveAsync(approverOp, await ApprovalIdAsync(approved))).StatusCode);
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(op, approved)).GetProperty("status").GetString());

        // Requests of other tests share this portal: only this test's runs are looked at.
        Guid[] mine = [waiting, halfway, rejected, cancelled, approved, others, own];
        async Task<Guid[]> ListedAsync(HttpClient client, string query)
        {
            var items = (await client.GetFromJsonAsync<JsonElement>($"/api/approvals?{query}")).EnumerateArray()
                .Where(a => mine.Contains(a.GetProperty("executionId").GetGuid())).ToList();
            if (query.Contains("status=") && !query.Contains("status=all"))
                Assert.All(items, a => Assert.Equal(query.Split("status=")[1].Split('&')[0], a.GetProperty("status").GetString(), ignoreCase: true));
            if (query.Contains("scope=mine"))
                Assert.All(items, a => Assert.Equal("Pending", a.GetProperty("status").GetString()));
            return items.Select(a => a.GetProperty("executionId").GetGuid()).Order().ToArray();
        }
        static Guid[] Set(params Guid[] ids) => ids.Order().ToArray();

        // "My requests": the requester's own, every status; the status filter narrows them.
        Assert.Equal(Set(waiting, halfway, rejected, cancelled, approved), await ListedAsync(op, "scope=requested"));
        Assert.Equal(Set(waiting, halfway, rejected, cancelled, approved), await ListedAsync(op, "scope=requested&status=all"));
        Assert.Equal(Set(waiting, halfway), await ListedAsync(op, "scope=requested&status=pending"));
        Assert.Equal(Set(others), await ListedAsync(otherOp, "scope=Requested"));
        Assert.Equal(Set(own), await ListedAsync(approverOp, "scope=requested"));
        Assert.All((await op.GetFromJsonAsync<JsonElement>("/api/approvals?scope=requested")).EnumerateArray(),
            a => Assert.Equal(opEmail, a.GetProperty("requestedBy").GetString()));

        // "Waiting for me": pending, my role, not mine, not decided by me.
        Assert.Equal(Set(waiting, others, own), await ListedAsync(approver, "scope=mine"));
        Assert.Equal(Set(waiting, halfway, others), await ListedAsync(approverOp, "scope=mine"));
        Assert.Empty(await ListedAsync(op, "scope=mine")); // an Operator decides nothing
        Assert.Empty(await ListedAsync(Admin, "scope=mine")); // nor an Admin without the approver role
        Assert.Empty(await ListedAsync(approver, "scope=mine&status=approved"));

        // Every request, by status (each item has the status asked for).
        Assert.Equal(Set(waiting, halfway, others, own), await ListedAsync(approver, "status=pending"));
        Assert.Equal(Set(approved), await ListedAsync(otherOp, "status=approved"));
        Assert.Equal(Set(rejected), await ListedAsync(otherOp, "status=rejected"));
        Assert.Equal(Set(cancelled), await ListedAsync(otherOp, "status=cancelled"));
        Assert.Empty(await ListedAsync(otherOp, "status=expired"));
        Assert.Equal(Set(mine), await ListedAsync(otherOp, "status=all"));
        Assert.Equal(Set(mine), await ListedAsync(otherOp, "scope=all"));

        var badScope = await op.GetAsync("/api/approvals?scope=everyone");
        Assert.Equal(HttpStatusCode.BadRequest, badScope.StatusCode);
        Assert.Contains("is not a scope", await badScope.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.BadRequest, (await op.GetAsync("/api/approvals?status=42")).StatusCode);
        Assert.Equal(otherEmail, (await otherOp.GetFromJsonAsync<JsonElement>($"/api/approvals/{await ApprovalIdAsync(others)}")).GetProperty("request").GetProperty("requestedBy").GetString());
    }

    [Fact]
    public async Task ASecretValue_IsInNoAnswerOfTheQueueOrTheDetail_WhichShowStars_AndTheStepStillGetsIt()
    {
        var (name, op, _) = await GatedAsync(approvals: 1);
        var (approver, _, _) = await Portal.CreateUserAsync("approver", "Approver");
        var secret = $"s3cr3t-{Guid.NewGuid():N}";
        var id = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "secret", token = secret });
        var approvalId = await ApprovalIdAsync(id);

        async Task<List<string>> AnswersAsync()
        {
            var answers = new List<string>();
            foreach (var client in new[] { op, approver, Admin })
            {
                foreach (var query in new[] { "", "?status=all", "?status=pending", "?status=approved", "?scope=mine", "?scope=requested" })
                    answers.Add(await client.GetStringAsync($"/api/approvals{query}"));
                answers.Add(await client.GetStringAsync($"/api/approvals/{approvalId}"));
            }
            return answers;
        }

        var before = await AnswersAsync();
        Assert.All(before, a => Assert.DoesNotContain(secret, a));
        var queued = (await approver.GetFromJsonAsync<JsonElement>("/api/approvals?scope=mine")).EnumerateArray().Single(a => a.GetProperty("id").GetGuid() == approvalId);
        Assert.Equal("***", queued.GetProperty("parameters").GetProperty("token").GetString());
        Assert.Equal("production", queued.GetProperty("parameters").GetProperty("environment").GetString());
        var detail = await approver.GetFromJsonAsync<JsonElement>($"/api/approvals/{approvalId}");
        Assert.Equal("***", detail.GetProperty("request").GetProperty("parameters").GetProperty("token").GetString());
        var verify = detail.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("stepId").GetString() == "verify").GetProperty("text").GetString();
        Assert.Equal($"run printf %s '***' > {_markers}/'secret'.token", verify); // rendered with this run's values, the secret masked

        var approve = await ApproveAsync(approver, approvalId);
        Assert.Equal(HttpStatusCode.OK, approve.StatusCode);
        Assert.DoesNotContain(secret, await approve.Content.ReadAsStringAsync());
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(op, id)).GetProperty("status").GetString());
        Assert.All(await AnswersAsync(), a => Assert.DoesNotContain(secret, a));
        // Masked where people read it, not lost: the step got the real value.
        Assert.Equal(secret, File.ReadAllText(Path.Combine(_markers, "secret.token")));
    }

    [Fact]
    public async Task AnotherSpellingOfATypedWhenValue_StillNeedsApproval()
    {
        var name = Name("spelling");
        await ExecutionApiTests.PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Typed conditions
            type: scaling
            parameters:
              replicas: { type: int, required: true }
              confirm: { type: bool, default: false }
            approval:
              required_approvals: 1
              when: { replicas: 1, confirm: true }
            steps:
              - id: scale
                action: shell
                run: touch {{{_markers}}}/scaled-{{ replicas }}
            """, name);
        var (op, _, _) = await Portal.CreateUserAsync("operator", "Operator");
        foreach (var (replicas, confirm) in new (object, object)[] { ("01", "TRUE"), ("+1", "True"), (1, true) })
        {
            var id = await ExecutionApiTests.StartAsync(op, name, new Dictionary<string, object> { ["replicas"] = replicas, ["confirm"] = confirm });
            Assert.Equal("AwaitingApproval", await StatusAsync(op, id));
            var shown = (await op.GetFromJsonAsync<JsonElement>($"/api/executions/{id}")).GetProperty("parameters");
            Assert.Equal("1", shown.GetProperty("replicas").GetString()); // stored and passed on in one spelling
            Assert.Equal("true", shown.GetProperty("confirm").GetString());
        }
        var other = await ExecutionApiTests.StartAsync(op, name, new { replicas = "02", confirm = "true" });
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(op, other)).GetProperty("status").GetString());
        Assert.True(File.Exists(Path.Combine(_markers, "scaled-2")));
        Assert.False(File.Exists(Path.Combine(_markers, "scaled-1")));
    }

    [Fact]
    public async Task AnApprovedRunCancelledBeforeItStarted_CannotBeResumed()
    {
        var (name, op, _) = await GatedAsync(approvals: 1);
        var (approver, _, _) = await Portal.CreateUserAsync("approver", "Approver");
        // Another node holds the run's concurrency key, so the approved run waits, Queued.
        await Portal.WithServiceAsync<PortalDbContext, int>(async db =>
        {
            var version = await db.RunbookVersions.AsNoTracking().FirstAsync(v => v.Runbook!.Name == name);
            db.Executions.Add(new Execution
            {
                Id = Guid.NewGuid(), RunbookVersionId = version.Id, RunbookName = name, Version = 1, Status = ExecutionStatus.Running, RequestedBy = "someone",
                RequestedAt = DateTime.UtcNow, StartedAt = DateTime.UtcNow, ParametersJson = "{}", ConcurrencyKey = "blocked", ConcurrencyLimit = 1,
                LeaseOwner = "another-node#claim", LeaseExpiresAt = DateTime.UtcNow.AddMinutes(10),
            });
            return await db.SaveChangesAsync();
        });
        var id = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "blocked" });
        Assert.Equal(HttpStatusCode.OK, (await ApproveAsync(approver, await ApprovalIdAsync(id))).StatusCode);
        Assert.Equal("Queued", await StatusAsync(op, id));
        Assert.Equal(HttpStatusCode.OK, (await op.PostAsJsonAsync($"/api/executions/{id}/cancel", new { })).StatusCode);
        var resume = await op.PostAsJsonAsync($"/api/executions/{id}/resume", new { });
        Assert.Equal(HttpStatusCode.Conflict, resume.StatusCode);
        Assert.Contains("did not pass its approval", await resume.Content.ReadAsStringAsync());
        Assert.False(File.Exists(Path.Combine(_markers, "blocked")));
    }

    [Fact]
    public async Task AResume_OfARunWhoseVersionWasDeprecated_IsRefused_UnlessAnAdminForcesIt_Audited()
    {
        var name = Name("deprecated");
        await ExecutionApiTests.PublishAsync(Portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Fails once
            type: maintenance
            steps:
              - id: flaky
                action: shell
                run: test -e {{{_markers}}}/fixed
            """, name);
        var (op, _, _) = await Portal.CreateUserAsync("operator", "Operator");
        var id = await ExecutionApiTests.StartAsync(op, name, new { });
        Assert.Equal("Failed", (await ExecutionApiTests.WaitForEndAsync(op, id)).GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.OK, (await Admin.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/deprecate", new { comment = "replaced" })).StatusCode);
        File.WriteAllText(Path.Combine(_markers, "fixed"), "");

        var refused = await op.PostAsJsonAsync($"/api/executions/{id}/resume", new { force = true });
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("Deprecated", await refused.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Conflict, (await Admin.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Admin.PostAsJsonAsync($"/api/executions/{id}/resume", new { force = true })).StatusCode);
        Assert.Equal("Succeeded", (await ExecutionApiTests.WaitForEndAsync(op, id)).GetProperty("status").GetString());
        var audit = await Admin.GetStringAsync("/api/audit?action=execution.resumed-forced");
        Assert.Contains(id.ToString(), audit);
    }

    [Fact]
    public async Task ACoAuthorOfARunbookVersion_CannotApproveIt()
    {
        var name = Name("coauthor");
        var yaml = GatedYaml(name, _markers, approvals: 1);
        var (author, _, _) = await Portal.CreateUserAsync("author", "Author");
        var (colleague, _, _) = await Portal.CreateUserAsync("colleague", "Author");
        var (reviewer, _, _) = await Portal.CreateUserAsync("reviewer", "Author");
        Assert.Equal(HttpStatusCode.Created, (await author.PostAsync("/api/runbooks", new StringContent(yaml, System.Text.Encoding.UTF8, "application/yaml"))).StatusCode);
        // The colleague re-saves the draft: they are now the last saver, the author a co-author.
        var resaved = await colleague.PutAsync($"/api/runbooks/{name}", new StringContent(yaml.Replace("title: Gated deploy", "title: Gated deploy, reworded"), System.Text.Encoding.UTF8, "application/yaml"));
        Assert.True(resaved.IsSuccessStatusCode, await resaved.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await colleague.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/submit", new { })).StatusCode);

        foreach (var contributor in new[] { author, colleague })
        {
            var refused = await contributor.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/approve", new { });
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Contains("saved a revision", await refused.Content.ReadAsStringAsync());
        }
        Assert.Equal(HttpStatusCode.OK, (await reviewer.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/approve", new { })).StatusCode);
    }
}

public sealed class SqliteApprovalApiTests(SqliteEngineFixture fixture) : ApprovalApiTests(fixture), IClassFixture<SqliteEngineFixture>;

public sealed class PostgresApprovalApiTests(PostgresEngineFixture fixture) : ApprovalApiTests(fixture), IClassFixture<PostgresEngineFixture>;

/// <summary>Expiry on the portal's own clock (a FakeTimeProvider): no in-memory timer, the worker's sweep of the database ends it.</summary>
public abstract class ApprovalExpiryTests
{
    protected abstract Task<TestDatabase> DatabaseAsync();

    [Fact]
    public async Task ARequestNotApprovedInTime_EndsExpired_AndTakesNoLateApproval()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var portal = new PortalFactory(await DatabaseAsync(), EngineSettings.Fast, clock);
        _ = portal.Server;
        var markers = Directory.CreateTempSubdirectory("rbp-expiry-").FullName;
        var name = $"expiry-{Guid.NewGuid():N}"[..28];
        await ExecutionApiTests.PublishAsync(portal, ApprovalApiTests.GatedYaml(name, markers, approvals: 2, expires: "4h"), name);
        var (op, _, _) = await portal.CreateUserAsync("operator", "Operator");
        var (first, _, _) = await portal.CreateUserAsync("approver", "Approver");
        var (second, _, _) = await portal.CreateUserAsync("approver", "Approver");

        var id = await ExecutionApiTests.StartAsync(op, name, new { environment = "production", tag = "late" });
        var request = (await op.GetFromJsonAsync<JsonElement>("/api/approvals?status=pending")).EnumerateArray().Single(a => a.GetProperty("executionId").GetGuid() == id);
        var approvalId = request.GetProperty("id").GetGuid();
        Assert.Equal(clock.GetUtcNow().UtcDateTime.AddHours(4), request.GetProperty("expiresAt").GetDateTime(), TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.OK, (await first.PostAsJsonAsync($"/api/approvals/{approvalId}/approve", new { })).StatusCode);

        clock.Advance(TimeSpan.FromHours(3));
        var stillWaiting = await op.GetFromJsonAsync<JsonElement>($"/api/executions/{id}");
        Assert.Equal("AwaitingApproval", stillWaiting.GetProperty("status").GetString());

        clock.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));
        var done = await ExecutionApiTests.WaitForAsync(op, id, e => e.GetProperty("status").GetString() == "Expired");
        Assert.Contains("1 of 2 approvals", done.GetProperty("reason").GetString());
        var late = await second.PostAsJsonAsync($"/api/approvals/{approvalId}/approve", new { });
        Assert.Equal(HttpStatusCode.Conflict, late.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await op.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
        var expired = await op.GetFromJsonAsync<JsonElement>("/api/approvals?status=expired");
        Assert.Contains(expired.EnumerateArray(), a => a.GetProperty("id").GetGuid() == approvalId);
        Assert.False(File.Exists(Path.Combine(markers, "late")));
        Directory.Delete(markers, recursive: true);
    }
}

public sealed class SqliteApprovalExpiryTests : ApprovalExpiryTests
{
    protected override Task<TestDatabase> DatabaseAsync() => Task.FromResult(TestDatabase.Sqlite());
}

public sealed class PostgresApprovalExpiryTests : ApprovalExpiryTests
{
    protected override Task<TestDatabase> DatabaseAsync() => TestDatabase.PostgresAsync();
}
