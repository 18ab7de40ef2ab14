using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>Several portal nodes on one PostgreSQL: no double runs; a dead node's run is taken over and resumed.</summary>
public sealed class TakeoverTests
{
    /// <summary>Engine settings of one node; a node joining an existing portal does not bootstrap an admin.</summary>
    private static Dictionary<string, string?> Node(string id, bool bootstrap)
    {
        var settings = new Dictionary<string, string?>(EngineSettings.Fast)
        {
            ["Engine:NodeId"] = id,
            ["Engine:LeaseDuration"] = "00:00:06", // a node fenced off (KillGrace 1 s) stops its step after 4 s without a renewal
        };
        if (!bootstrap)
        {
            settings["Bootstrap:AdminEmail"] = "";
            settings["Bootstrap:AdminPassword"] = "";
            settings["Bootstrap:ApiToken"] = "";
        }
        return settings;
    }

    [Fact]
    public async Task TwoWorkersOnOnePostgres_NeverRunTheSameExecution()
    {
        var database = (PostgresTestDatabase)await TestDatabase.PostgresAsync();
        await using var first = new PortalFactory(database, Node("node-1", bootstrap: true));
        _ = first.Server;
        await using var second = new PortalFactory(TestDatabase.Shared(database), Node("node-2", bootstrap: false));
        _ = second.Server;

        var name = $"twin-{Guid.NewGuid():N}"[..24];
        await ExecutionApiTests.PublishAsync(first, $"""
            apiVersion: runbooks/v1
            name: {name}
            title: Twin workers
            type: maintenance
            steps:
              - id: work
                action: shell
                run: sleep 0.1
            """, name);

        var clients = new[] { first.AdminClient(), second.CreateClient(first.AdminToken) };
        var ids = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => ExecutionApiTests.StartAsync(clients[i % 2], name, new { })));
        var nodes = new HashSet<string>();
        foreach (var id in ids)
        {
            var done = await ExecutionApiTests.WaitForEndAsync(clients[0], id, seconds: 60);
            Assert.Equal("Succeeded", done.GetProperty("status").GetString());
            var claims = (await ExecutionApiTests.EventsAsync(clients[0], id)).Where(e => e.GetProperty("kind").GetString() == "execution_claimed").ToList();
            Assert.Single(claims);
            nodes.Add(claims[0].GetProperty("data").GetProperty("node").GetString()!);
            var starts = (await ExecutionApiTests.EventsAsync(clients[0], id)).Count(e => e.GetProperty("kind").GetString() == "step_started");
            Assert.Equal(1, starts);
        }
        Assert.NotEmpty(nodes);
    }

    /// <summary>
    /// A node cut off from the database in the middle of its claim pass holds the claim lock in a transaction that
    /// never ends (its connection stays open, silent). The server ends that session after a third of the lease, so the
    /// other nodes go on claiming; without that, every claim pass of every node waited on it for good.
    /// </summary>
    [Fact]
    public async Task ANodeStuckInTheMiddleOfItsClaimPass_DoesNotStopTheOtherNodesFromClaiming()
    {
        var database = (PostgresTestDatabase)await TestDatabase.PostgresAsync();
        await using var node = new PortalFactory(database, Node("node-claims", bootstrap: true));
        _ = node.Server;
        var name = $"stuck-{Guid.NewGuid():N}"[..24];
        await ExecutionApiTests.PublishAsync(node, $"""
            apiVersion: runbooks/v1
            name: {name}
            title: Claimed despite a stuck node
            type: maintenance
            steps:
              - id: work
                action: shell
                run: echo claimed
            """, name);

        // The stuck node: a session of the portal's own settings, in a transaction holding the claim lock, then silent.
        var connectionString = await node.WithServiceAsync<PortalDbContext, string>(db => Task.FromResult(db.Database.GetConnectionString()!));
        await using var stuck = new Npgsql.NpgsqlConnection(connectionString);
        await stuck.OpenAsync();
        await using var transaction = await stuck.BeginTransactionAsync();
        await using (var take = new Npgsql.NpgsqlCommand($"SELECT pg_advisory_xact_lock({ExecutionWorker.ClaimLockKey})", stuck, transaction))
            await take.ExecuteNonQueryAsync();

        var client = node.AdminClient();
        var id = await ExecutionApiTests.StartAsync(client, name, new { });
        var done = await ExecutionApiTests.WaitForEndAsync(client, id, seconds: 60);
        Assert.Equal("Succeeded", done.GetProperty("status").GetString());

        // The server ended the stuck session; its transaction and the lock went with it.
        await using var probe = new Npgsql.NpgsqlCommand("SELECT 1", stuck, transaction);
        await Assert.ThrowsAnyAsync<Exception>(() => probe.ExecuteScalarAsync());
    }

    /// <summary>Creates, submits and (as a second admin) approves a runbook through a node's API.</summary>
    private static async Task PublishThroughAsync(Uri node, string adminToken, string name, string yaml)
    {
        using var admin = new HttpClient { BaseAddress = node };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
        var created = await admin.PostAsync("/api/runbooks", new StringContent(yaml, System.Text.Encoding.UTF8, "application/yaml"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/submit", new { })).StatusCode);
        // The bootstrap admin wrote it; a second admin approves.
        var reviewerEmail = $"reviewer-{name}@portal.test";
        await admin.PostAsJsonAsync("/api/admin/users", new { email = reviewerEmail, password = "a long enough password", roles = new[] { "Admin" } });
        var reviewerToken = (await (await admin.PostAsJsonAsync($"/api/admin/users/{reviewerEmail}/tokens", new { name = "t" })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString();
        using var reviewer = new HttpClient { BaseAddress = node };
        reviewer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", reviewerToken);
        Assert.Equal(HttpStatusCode.OK, (await reviewer.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/approve", new { })).StatusCode);
    }

    [Fact]
    public async Task ANodeCutOffFromTheDatabase_StopsItsStepBeforeAnotherNodeTakesTheRunOver_AndTheResumeRunsTheStepOnce()
    {
        var database = (PostgresTestDatabase)await TestDatabase.PostgresAsync();
        await using var dropAtTheEnd = database;
        var direct = new Npgsql.NpgsqlConnectionStringBuilder(database.ConnectionString);
        await using var proxy = TcpProxy.Start(direct.Host!, direct.Port);
        var viaProxy = new Npgsql.NpgsqlConnectionStringBuilder(database.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port };
        var token = "node-test-" + Guid.NewGuid().ToString("N") + Guid.NewGuid().ToString("N");
        var work = Directory.CreateTempSubdirectory("rbp-fence-").FullName;
        await using var cutOff = await PortalNodeProcess.StartAsync(new Dictionary<string, string>
        {
            ["Database:Provider"] = "Postgres",
            ["ConnectionStrings:Postgres"] = viaProxy.ToString(),
            ["Bootstrap:AdminEmail"] = PortalFactory.AdminEmail,
            ["Bootstrap:AdminPassword"] = PortalFactory.AdminPassword,
            ["Bootstrap:ApiToken"] = token,
            ["Engine:NodeId"] = "node-cut-off",
            ["Engine:LeaseDuration"] = "00:00:06", // a node fenced off (KillGrace 1 s) stops its step after 4 s without a renewal
            ["Engine:KillGrace"] = "00:00:01",
            ["Engine:PollInterval"] = "00:00:00.200",
        });
        try
        {
            var name = $"fence-{Guid.NewGuid():N}"[..24];
            // The step counts its starts, says it is alive every 50 ms, and notes when it is told to stop.
            await PublishThroughAsync(cutOff.BaseAddress, token, name, $$"""
                apiVersion: runbooks/v1
                name: {{name}}
                title: Fenced off
                type: maintenance
                parameters:
                  work: { type: string, required: true }
                steps:
                  - id: work
                    action: shell
                    run: |
                      echo started >> "$RBP_PARAM_WORK/starts"
                      if [ -f "$RBP_PARAM_WORK/done" ]; then exit 0; fi
                      trap 'date +%s%N > "$RBP_PARAM_WORK/stopped"; exit 143' TERM
                      while true; do date +%s%N > "$RBP_PARAM_WORK/alive"; sleep 0.05; done
                """);
            using var viaCutOff = new HttpClient { BaseAddress = cutOff.BaseAddress };
            viaCutOff.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            var id = await ExecutionApiTests.StartAsync(viaCutOff, name, new { work });
            await ExecutionApiTests.WaitForAsync(viaCutOff, id, e => e.GetProperty("steps")[0].GetProperty("status").GetString() == "Running");

            proxy.Cut();

            await using var survivor = new PortalFactory(TestDatabase.Shared(database), Node("node-survives", bootstrap: false));
            var client = survivor.CreateClient(token);
            await ExecutionApiTests.WaitForAsync(client, id, e => e.GetProperty("status").GetString() == "Interrupted", seconds: 60); // lease 6 s, then the next claim pass of a node that just started
            var interruptedAt = (await ExecutionApiTests.EventsAsync(client, id))
                .Single(e => e.GetProperty("kind").GetString() == "execution_interrupted").GetProperty("at").GetDateTime().ToUniversalTime();

            // The cut-off node stopped its step itself, before the run was taken from it.
            var stopped = File.Exists(Path.Combine(work, "stopped")) ? Epoch(Path.Combine(work, "stopped")) : (DateTime?)null;
            Assert.True(stopped is not null, $"the step on the cut-off node was never told to stop.\n{cutOff.Log}");
            Assert.True(stopped < interruptedAt, $"the step was stopped at {stopped:O}, after the run was interrupted at {interruptedAt:O}");
            Assert.True(Epoch(Path.Combine(work, "alive")) < interruptedAt, "the step was still alive when another node took the run over");
            Assert.Contains("could not renew its lease", cutOff.Log);

            await File.WriteAllTextAsync(Path.Combine(work, "done"), "");
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
            await ExecutionApiTests.WaitForAsync(client, id, e => e.GetProperty("status").GetString() == "Succeeded", seconds: 30);
            // Once on the cut-off node, once resumed: never twice at once, never again.
            Assert.Equal(2, (await File.ReadAllLinesAsync(Path.Combine(work, "starts"))).Length);
            var events = await ExecutionApiTests.EventsAsync(client, id);
            Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.GetProperty("seq").GetInt64()));
            Assert.Single(events, e => e.GetProperty("kind").GetString() == "execution_finished");
        }
        finally
        {
            cutOff.Kill(); // with a step it might still be running, which would keep writing to the folder
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The time in a file written by <c>date +%s%N</c>.</summary>
    private static DateTime Epoch(string file) =>
        DateTime.UnixEpoch.AddTicks(long.Parse(File.ReadAllText(file).Trim(), System.Globalization.CultureInfo.InvariantCulture) / 100);

    [Fact]
    public async Task KilledNodesExecution_BecomesInterrupted_AndResumesOnAnotherNode()
    {
        var database = (PostgresTestDatabase)await TestDatabase.PostgresAsync();
        await using var dropAtTheEnd = database;
        var token = "node-test-" + Guid.NewGuid().ToString("N") + Guid.NewGuid().ToString("N");
        var marker = Path.Combine(Path.GetTempPath(), $"rbp-slow-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(marker, "");
        await using var dying = await PortalNodeProcess.StartAsync(new Dictionary<string, string>
        {
            ["Database:Provider"] = "Postgres",
            ["ConnectionStrings:Postgres"] = database.ConnectionString,
            ["Bootstrap:AdminEmail"] = PortalFactory.AdminEmail,
            ["Bootstrap:AdminPassword"] = PortalFactory.AdminPassword,
            ["Bootstrap:ApiToken"] = token,
            ["Engine:NodeId"] = "node-dies",
            ["Engine:LeaseDuration"] = "00:00:06", // a node fenced off (KillGrace 1 s) stops its step after 4 s without a renewal
            ["Engine:KillGrace"] = "00:00:01",
            ["Engine:PollInterval"] = "00:00:00.200",
        });
        try
        {
            using var viaDying = new HttpClient { BaseAddress = dying.BaseAddress };
            viaDying.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);

            var name = $"takeover-{Guid.NewGuid():N}"[..24];
            // Published through the dying node's API (same database as the survivor).
            await PublishThroughAsync(dying.BaseAddress, token, name, $$$"""
                apiVersion: runbooks/v1
                name: {{{name}}}
                title: Survives a dead node
                type: maintenance
                parameters:
                  marker: { type: string, required: true }
                steps:
                  - id: first
                    action: shell
                    run: echo first
                  - id: slow
                    action: shell
                    run: if [ -f "$RBP_PARAM_MARKER" ]; then sleep 60; fi; echo slow done
                """);

            var id = await ExecutionApiTests.StartAsync(viaDying, name, new { marker });
            await ExecutionApiTests.WaitForAsync(viaDying, id, e => e.GetProperty("currentStepId").GetString() == "slow"
                && e.GetProperty("steps")[1].GetProperty("status").GetString() == "Running");

            dying.Kill();

            await using var survivor = new PortalFactory(TestDatabase.Shared(database), Node("node-survives", bootstrap: false));
            var client = survivor.CreateClient(token);
            var interrupted = await ExecutionApiTests.WaitForAsync(client, id, e => e.GetProperty("status").GetString() == "Interrupted", seconds: 30);
            Assert.Equal("slow", interrupted.GetProperty("failedStepId").GetString());
            var events = await ExecutionApiTests.EventsAsync(client, id);
            var interruption = events.Single(e => e.GetProperty("kind").GetString() == "execution_interrupted");
            Assert.Equal("slow", interruption.GetProperty("stepId").GetString());
            Assert.Contains("node-dies", interruption.GetProperty("data").GetRawText());

            File.Delete(marker);
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
            var done = await ExecutionApiTests.WaitForAsync(client, id, e => e.GetProperty("status").GetString() == "Succeeded", seconds: 30);
            Assert.Equal(1, done.GetProperty("steps")[0].GetProperty("attempts").GetInt32());
            var after = await ExecutionApiTests.EventsAsync(client, id);
            Assert.Contains(after, e => e.GetProperty("kind").GetString() == "execution_claimed" && e.GetProperty("data").GetRawText().Contains("node-survives"));
            Assert.Equal(Enumerable.Range(1, after.Count).Select(i => (long)i), after.Select(e => e.GetProperty("seq").GetInt64()));
        }
        finally
        {
            File.Delete(marker);
        }
    }

}

/// <summary>A node that shuts down lets the running step finish, starts no further step, and leaves the run to resume.</summary>
public sealed class GracefulShutdownTests
{
    [Fact]
    public async Task Shutdown_LetsTheRunningStepFinish_AndLeavesTheRunInterruptedAtTheNextStep()
    {
        await using var database = TestDatabase.Sqlite();
        var settings = new Dictionary<string, string?>(EngineSettings.Fast) { ["Engine:ShutdownGrace"] = "00:00:20" };
        var first = new PortalFactory(TestDatabase.Shared(database), settings);
        var name = $"graceful-{Guid.NewGuid():N}"[..24];
        Guid id;
        try
        {
            await ExecutionApiTests.PublishAsync(first, $"""
                apiVersion: runbooks/v1
                name: {name}
                title: Graceful
                type: maintenance
                steps:
                  - id: current
                    action: shell
                    run: sleep 1; echo finished current
                  - id: next
                    action: shell
                    run: echo next
                """, name);
            id = await ExecutionApiTests.StartAsync(first.AdminClient(), name, new { });
            await ExecutionApiTests.WaitForAsync(first.AdminClient(), id, e => e.GetProperty("steps")[0].GetProperty("status").GetString() == "Running");
        }
        finally
        {
            await first.DisposeAsync(); // a graceful stop: waits for the running step within the grace period
        }

        await using var second = new PortalFactory(TestDatabase.Shared(database), settings);
        var client = second.CreateClient(first.AdminToken);
        var stopped = await client.GetFromJsonAsync<System.Text.Json.JsonElement>($"/api/executions/{id}");
        Assert.Equal("Interrupted", stopped.GetProperty("status").GetString());
        Assert.Equal("Succeeded", stopped.GetProperty("steps")[0].GetProperty("status").GetString());
        Assert.Equal("Pending", stopped.GetProperty("steps")[1].GetProperty("status").GetString());
        Assert.Equal("next", stopped.GetProperty("failedStepId").GetString());

        Assert.Equal(System.Net.HttpStatusCode.OK, (await client.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
        var done = await ExecutionApiTests.WaitForAsync(client, id, e => e.GetProperty("status").GetString() == "Succeeded");
        Assert.Equal(1, done.GetProperty("steps")[0].GetProperty("attempts").GetInt32());
    }
}

/// <summary>A node whose run was taken over stops it at once and records nothing more: the other node's record counts.</summary>
public sealed class LeaseLostTests
{
    [Fact]
    public async Task ANodeThatLostItsLease_KillsTheRunningStep_AndRecordsNothingMore()
    {
        await using var database = TestDatabase.Sqlite();
        await using var portal = new PortalFactory(database, Settings());
        var pidFile = PidFile();
        try
        {
            var (client, id, pid) = await StartSlowRunAsync(portal, pidFile);

            // Another node takes the run over, as its claim pass does once the lease has run out: the run is
            // Interrupted at its step (and could then be resumed there).
            using (var scope = portal.Services.CreateScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
                var execution = await db.Executions.Include(e => e.Steps).SingleAsync(e => e.Id == id);
                ExecutionLedger.Append(db, execution, new HostEvent("execution_interrupted", "slow",
                    new { reason = "Node node-loses stopped renewing its lease.", node = "node-loses", step = "slow" }), DateTime.UtcNow);
                await db.SaveChangesAsync();
            }
            var before = await ExecutionApiTests.EventsAsync(client, id);

            await AssertStoppedAsync(portal, pid);
            var after = await ExecutionApiTests.EventsAsync(client, id);
            Assert.Equal(before.Select(e => e.GetProperty("seq").GetInt64()), after.Select(e => e.GetProperty("seq").GetInt64()));
            var taken = await client.GetFromJsonAsync<JsonElement>($"/api/executions/{id}");
            Assert.Equal("Interrupted", taken.GetProperty("status").GetString());
            Assert.Equal("slow", taken.GetProperty("failedStepId").GetString());
            Assert.Equal("Pending", taken.GetProperty("steps")[1].GetProperty("status").GetString());
        }
        finally
        {
            File.Delete(pidFile);
        }
    }

    [Fact]
    public async Task ALeaseNamesTheClaim_SoTheSameNodeClaimingTheRunAgain_StopsTheOldRun()
    {
        await using var database = TestDatabase.Sqlite();
        await using var portal = new PortalFactory(database, Settings());
        var pidFile = PidFile();
        try
        {
            var (client, id, pid) = await StartSlowRunAsync(portal, pidFile);

            // This node's claim pass took the run over (its lease had run out while the run stood still), and an
            // operator resumed it at once: this same node claims it again and runs the step anew, while the old run
            // still stands in its step. The old run's lease and the new one's both start with this node's name.
            long takenOverAt;
            using (var scope = portal.Services.CreateScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
                var execution = await db.Executions.Include(e => e.Steps).SingleAsync(e => e.Id == id);
                takenOverAt = ExecutionLedger.Append(db, execution, new HostEvent("execution_interrupted", "slow",
                    new { reason = "Node node-loses stopped renewing its lease.", node = "node-loses", step = "slow" }), DateTime.UtcNow).Seq;
                await db.SaveChangesAsync();
            }
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync($"/api/executions/{id}/resume", new { })).StatusCode);
            var again = await WaitForAsync(() => File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out var p) && p != pid ? p : (int?)null, "the resumed step's pid");

            await AssertStoppedAsync(portal, pid);
            Assert.True(Directory.Exists($"/proc/{again}"), "the resumed run's step should still run");
            var events = await ExecutionApiTests.EventsAsync(client, id);
            var since = events.Where(e => e.GetProperty("seq").GetInt64() > takenOverAt).Select(e => e.GetProperty("kind").GetString()).ToList();
            Assert.DoesNotContain("step_failed", since); // the old run recorded nothing more
            Assert.DoesNotContain("execution_finished", since);
            Assert.Equal("Running", (await client.GetFromJsonAsync<JsonElement>($"/api/executions/{id}")).GetProperty("status").GetString());

            Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync($"/api/executions/{id}/cancel", new { rollback = false })).StatusCode);
            await ExecutionApiTests.WaitForEndAsync(client, id);
        }
        finally
        {
            File.Delete(pidFile);
        }
    }

    private static Dictionary<string, string?> Settings() => new(EngineSettings.Fast)
    {
        ["Engine:LeaseDuration"] = "00:00:06", // a node fenced off (KillGrace 1 s) stops its step after 4 s without a renewal
        ["Engine:NodeId"] = "node-loses",
    };

    private static string PidFile() => Path.Combine(Path.GetTempPath(), $"rbp-lease-{Guid.NewGuid():N}");

    /// <summary>Starts a run whose first step writes its pid to <paramref name="pidFile"/> and sleeps; answers once it runs.</summary>
    private static async Task<(HttpClient Client, Guid Id, int Pid)> StartSlowRunAsync(PortalFactory portal, string pidFile)
    {
        var name = $"lease-{Guid.NewGuid():N}"[..24];
        await ExecutionApiTests.PublishAsync(portal, $"""
            apiVersion: runbooks/v1
            name: {name}
            title: Loses its lease
            type: maintenance
            parameters:
              pidfile: {"{"} type: string, required: true {"}"}
            steps:
              - id: slow
                action: shell
                run: echo $BASHPID > "$RBP_PARAM_PIDFILE"; sleep 60
              - id: next
                action: shell
                run: echo never
            """, name);
        var client = portal.AdminClient();
        var id = await ExecutionApiTests.StartAsync(client, name, new { pidfile = pidFile });
        await ExecutionApiTests.WaitForAsync(client, id, e => e.GetProperty("steps")[0].GetProperty("status").GetString() == "Running");
        var pid = await WaitForAsync(() => File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out var p) ? p : (int?)null, "the step's pid");
        return (client, id, pid);
    }

    /// <summary>The node says it lost the lease, the step's process is gone, and nothing failed on the way.</summary>
    private static async Task AssertStoppedAsync(PortalFactory portal, int pid)
    {
        await WaitForAsync(() => portal.Logs.Any(l => l.Contains("lost its lease and stopped the run", StringComparison.Ordinal)) ? true : (bool?)null, "the node to stop the run");
        await WaitForAsync(() => Directory.Exists($"/proc/{pid}") ? null : (bool?)true, "the step's process to be gone");
        Assert.DoesNotContain(portal.Logs, l => l.Contains("failed in the host", StringComparison.Ordinal));
    }

    private static async Task<T> WaitForAsync<T>(Func<T?> probe, string what) where T : struct
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            if (probe() is { } value)
                return value;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Waited 20 s for {what}.");
            await Task.Delay(50);
        }
    }
}
