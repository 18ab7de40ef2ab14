using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps.Aws;

namespace RunbookPortal.Engine.Tests.Execution.Aws;

/// <summary><c>from: ssm:/path</c> secrets read from the local SSM endpoint, and what the run shows of them.</summary>
public sealed class ParameterStoreSecretsTests : ScratchFolder
{
    private const string Parameters = """
        db_password: { type: secret, required: true, from: ssm:/prod/db/password }
        region: { type: string, default: eu-west-1 }
        """;

    [Fact]
    public async Task Fetch_ReadsEachFromParameterWithDecryption()
    {
        await using var ssm = new FakeSsm();
        ssm.Parameters["/prod/db/password"] = ("SecureString", "pa$$ \"word\" ü");
        var runbook = Engine.Runbook("- id: one\n  action: shell\n  run: echo {{ db_password }}", Parameters);

        var values = await ParameterStoreSecrets.FetchAsync(SsmClient.Create(AwsEngine.Settings(ssm: ssm.Endpoint.Url)), runbook, CancellationToken.None);

        Assert.Equal(new Dictionary<string, string> { ["db_password"] = "pa$$ \"word\" ü" }, values);
        var call = Assert.Single(ssm.CallsOf("GetParameter"));
        Assert.Equal("/prod/db/password", (string?)call.Body["Name"]);
        Assert.True((bool?)call.Body["WithDecryption"]);
        Assert.Empty(ssm.ProtocolProblems);
    }

    [Fact]
    public async Task AMissingOrDeniedParameter_FailsWithAMessageNamingBoth_AndNoValue()
    {
        await using var ssm = new FakeSsm();
        var client = SsmClient.Create(AwsEngine.Settings(ssm: ssm.Endpoint.Url));
        var runbook = Engine.Runbook("- id: one\n  action: shell\n  run: echo {{ db_password }}", Parameters);

        var missing = await Assert.ThrowsAsync<ParameterStoreException>(() => ParameterStoreSecrets.FetchAsync(client, runbook, CancellationToken.None));
        ssm.Denied.Add("/prod/db/password");
        var denied = await Assert.ThrowsAsync<ParameterStoreException>(() => ParameterStoreSecrets.FetchAsync(client, runbook, CancellationToken.None));

        Assert.Equal("the secret parameter 'db_password' comes from the SSM parameter /prod/db/password, which does not exist (or not in this region)", missing.Message);
        Assert.StartsWith("the secret parameter 'db_password' comes from the SSM parameter /prod/db/password, which the portal's AWS identity may not read (User: arn:aws:iam::123456789012:user/portal is not authorized", denied.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFetchedSecret_ReachesTheStep_AndIsMaskedInEverythingRecorded()
    {
        await using var ssm = new FakeSsm();
        const string secret = "hunter2-from-parameter-store";
        ssm.Parameters["/prod/db/password"] = ("SecureString", secret);
        var runbook = Engine.Runbook("""
            - id: use
              action: shell
              run: |
                [ {{ db_password }} = hunter2-from-parameter-store ] && echo "the step has the secret"
                echo "it is {{ db_password }}"
            """, Parameters);
        var fetched = await ParameterStoreSecrets.FetchAsync(SsmClient.Create(AwsEngine.Settings(ssm: ssm.Endpoint.Url)), runbook, CancellationToken.None);
        var values = new Dictionary<string, string>(fetched) { ["region"] = "eu-west-1" };
        var log = new EventLog();
        using var control = new ExecutionControl();

        var outcome = await AwsEngine.Runner(AwsEngine.Settings(ssm: ssm.Endpoint.Url), Folder)
            .RunAsync(new ExecutionPlan(Guid.NewGuid(), runbook, values, DryRun: false), log, control, CancellationToken.None).WaitAsync(EventLog.Patience);

        Assert.Equal(ExecutionStatus.Succeeded, outcome.Status);
        Assert.Equal("the step has the secret\nit is ***", log.Output("use"));
        Assert.DoesNotContain(log.Events, e => Engine.DataJson(e).Contains(secret, StringComparison.Ordinal));
    }
}
