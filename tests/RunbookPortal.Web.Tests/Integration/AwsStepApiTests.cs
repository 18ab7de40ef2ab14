using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Engine.Tests.Execution.Aws;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Tests.Infrastructure;
using static RunbookPortal.Web.Tests.Integration.ExecutionApiTests;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// The portal's AWS steps as configured: <c>Aws:Region</c>, <c>Aws:ServiceUrl:Ssm</c> and <c>:Lambda</c>, credentials of a
/// profile (<c>Aws:Profile</c>, <c>Aws:ProfilesLocation</c>), against local endpoints that check every signature.
/// </summary>
public sealed class AwsStepApiTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "rbp-aws-" + Guid.NewGuid().ToString("N"));

    public AwsStepApiTests() => Directory.CreateDirectory(_folder);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task ARunbookOfShellSsmAndLambdaSteps_RunsThroughTheConfiguredEndpoints_AndAFailingLambdaRollsTheSsmStepBack()
    {
        await using var ssm = new FakeSsm("eu-central-1") { Instances = _ => [new("i-0web1", 1, Stdout: "backed up\n")] };
        await using var lambda = new AwsTestEndpoint("lambda", "eu-central-1", (_, _) => Task.FromResult(new AwsTestEndpoint.Response(200,
            """{"errorType":"Unhealthy","errorMessage":"checkout is down"}""", new Dictionary<string, string> { ["X-Amz-Function-Error"] = "Handled" })));
        var credentials = Path.Combine(_folder, "credentials");
        await File.WriteAllTextAsync(credentials, $"[portal-test]\naws_access_key_id = {AwsTestEndpoint.AccessKey}\naws_secret_access_key = {AwsTestEndpoint.SecretKey}\n");
        var settings = new Dictionary<string, string?>(EngineSettings.Fast)
        {
            ["Aws:Region"] = "eu-central-1",
            ["Aws:ServiceUrl:Ssm"] = ssm.Endpoint.Url.ToString(),
            ["Aws:ServiceUrl:Lambda"] = lambda.Url.ToString(),
            ["Aws:Profile"] = "portal-test",
            ["Aws:ProfilesLocation"] = credentials,
        };
        await using var portal = new PortalFactory(TestDatabase.Sqlite(), settings);
        var admin = portal.AdminClient();
        var name = $"aws-steps-{Guid.NewGuid():N}"[..28];
        await PublishAsync(portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: AWS steps
            type: deployment
            parameters:
              version: { type: string, required: true }
            steps:
              - id: build
                action: shell
                run: echo "artifact=web-{{ version }}"
                outputs: { artifact: 'artifact=(\S+)' }
              - id: backup
                action: ssm
                document: backup-application
                targets: { "tag:App": web }
                parameters: { artifact: ["{{ steps.build.outputs.artifact }}"] }
                rollback: { action: ssm, document: restore-application, targets: { "tag:App": web } }
              - id: verify
                action: lambda
                function: verify-deployment
                payload: { artifact: "{{ steps.build.outputs.artifact }}" }
            """, name);

        var id = await StartAsync(admin, name, new { version = "3.1.0" });
        var done = await WaitForEndAsync(admin, id, seconds: 60);
        var events = await EventsAsync(admin, id);

        Assert.Equal("Failed", done.GetProperty("status").GetString());
        var failed = events.Single(e => e.GetProperty("kind").GetString() == "step_failed").GetProperty("data").GetProperty("reason").GetString();
        Assert.Equal("the function 'verify-deployment' failed (Handled): Unhealthy: checkout is down", failed);
        Assert.Contains(events, e => e.GetProperty("kind").GetString() == "rollback_step_succeeded" && e.GetProperty("stepId").GetString() == "backup");
        Assert.Equal(["backup-application", "restore-application"], ssm.CallsOf("SendCommand").Select(c => (string?)c.Body["DocumentName"]));
        Assert.Equal("web-3.1.0", (string?)ssm.CallsOf("SendCommand")[0].Body["Parameters"]!["artifact"]![0]);
        Assert.Equal("""{"artifact":"web-3.1.0"}""", Assert.Single(lambda.Requests).BodyText);
        Assert.Contains(events, e => e.GetProperty("kind").GetString() == "step_output" && e.GetProperty("stepId").GetString() == "backup"
            && e.GetProperty("data").GetProperty("text").GetString() == "[i-0web1] backed up");
        // Signed for eu-central-1 with the profile's keys, through the configured endpoints.
        Assert.Empty(ssm.ProtocolProblems);
        Assert.Empty(lambda.SignatureProblems);
    }

    private async Task<PortalFactory> PortalAsync(FakeSsm ssm)
    {
        var credentials = Path.Combine(_folder, "credentials");
        await File.WriteAllTextAsync(credentials, $"[portal-test]\naws_access_key_id = {AwsTestEndpoint.AccessKey}\naws_secret_access_key = {AwsTestEndpoint.SecretKey}\n");
        return new PortalFactory(TestDatabase.Sqlite(), new Dictionary<string, string?>(EngineSettings.Fast)
        {
            ["Aws:Region"] = "eu-west-1",
            ["Aws:ServiceUrl:Ssm"] = ssm.Endpoint.Url.ToString(),
            ["Aws:Profile"] = "portal-test",
            ["Aws:ProfilesLocation"] = credentials,
        });
    }

    [Fact]
    public async Task ASecretFromParameterStore_ReachesTheStep_AndAppearsNowhere()
    {
        const string secret = "s3cr3t-from-parameter-store-42";
        await using var ssm = new FakeSsm();
        ssm.Parameters["/prod/db/password"] = ("SecureString", secret);
        await using var portal = await PortalAsync(ssm);
        var admin = portal.AdminClient();
        var name = $"ssm-secret-{Guid.NewGuid():N}"[..28];
        await PublishAsync(portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Secret from Parameter Store
            type: maintenance
            parameters:
              db_password: { type: secret, required: true, from: "ssm:/prod/db/password" }
            steps:
              - id: use
                action: shell
                run: |
                  [ {{ db_password }} = s3cr3t-from-parameter-store-42 ] && echo "the step has it"
                  echo "it is {{ db_password }}"
            """, name);

        var refused = await admin.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { db_password = "typed-in" } });
        var id = await StartAsync(admin, name, new { });
        var done = await WaitForEndAsync(admin, id);
        var events = await EventsAsync(admin, id);

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("'db_password' is read from SSM Parameter Store (/prod/db/password) when the run starts; leave it out.", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("Succeeded", done.GetProperty("status").GetString());
        var output = events.Where(e => e.GetProperty("kind").GetString() == "step_output").Select(e => e.GetProperty("data").GetProperty("text").GetString()).ToList();
        Assert.Equal(["the step has it", "it is ***"], output);
        Assert.True((bool?)Assert.Single(ssm.CallsOf("GetParameter")).Body["WithDecryption"]);
        Assert.DoesNotContain(secret, done.GetRawText(), StringComparison.Ordinal);
        Assert.DoesNotContain(events, e => e.GetRawText().Contains(secret, StringComparison.Ordinal));
        var row = await portal.WithServiceAsync<PortalDbContext, Execution>(db => db.Executions.AsNoTracking().FirstAsync(e => e.Id == id));
        Assert.Null(row.ProtectedSecrets); // never stored, not even encrypted
        Assert.DoesNotContain(secret, row.ParametersJson, StringComparison.Ordinal);
        Assert.DoesNotContain(portal.Logs, l => l.Contains(secret, StringComparison.Ordinal));
    }

    [Fact]
    public async Task AMissingParameterStoreSecret_FailsTheStart_SayingWhichParameter()
    {
        await using var ssm = new FakeSsm();
        await using var portal = await PortalAsync(ssm);
        var admin = portal.AdminClient();
        var name = $"ssm-missing-{Guid.NewGuid():N}"[..28];
        await PublishAsync(portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Missing secret
            type: maintenance
            parameters:
              api_token: { type: secret, from: "ssm:/prod/missing-token" }
            steps:
              - id: use
                action: shell
                run: echo never
            """, name);

        var id = await StartAsync(admin, name, new { });
        var done = await WaitForEndAsync(admin, id);
        var events = await EventsAsync(admin, id);

        Assert.Equal("Failed", done.GetProperty("status").GetString());
        var finished = events.Single(e => e.GetProperty("kind").GetString() == "execution_finished").GetProperty("data").GetProperty("reason").GetString();
        Assert.Equal("The portal could not run this execution: the secret parameter 'api_token' comes from the SSM parameter /prod/missing-token, which does not exist (or not in this region)", finished);
        Assert.DoesNotContain(events, e => e.GetProperty("kind").GetString() == "step_started");
    }

    [Fact]
    public async Task AnEndpointOverrideThatIsNotAUrl_StopsTheStart()
    {
        var settings = new Dictionary<string, string?>(EngineSettings.Fast) { ["Aws:ServiceUrl:Lambda"] = "not a url" };
        await using var portal = new PortalFactory(TestDatabase.Sqlite(), settings);

        var problem = await Assert.ThrowsAnyAsync<Exception>(async () => await portal.AdminClient().GetAsync("/healthz"));

        Assert.Contains("Aws:ServiceUrl:Ssm, :Lambda and :Sns must be absolute http:// or https:// URLs", problem.ToString(), StringComparison.Ordinal);
    }
}
