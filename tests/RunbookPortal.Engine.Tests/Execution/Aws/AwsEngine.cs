using Amazon.Runtime;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps;
using RunbookPortal.Engine.Execution.Steps.Aws;

namespace RunbookPortal.Engine.Tests.Execution.Aws;

/// <summary>Runners with the AWS executors pointed at local endpoints, with the test's credentials.</summary>
internal static class AwsEngine
{
    public const string Region = "eu-west-1";

    public static AwsStepSettings Settings(Uri? lambda = null, Uri? ssm = null, AWSCredentials? credentials = null, string region = Region) => new()
    {
        Region = region,
        Credentials = credentials ?? new BasicAWSCredentials(AwsTestEndpoint.AccessKey, AwsTestEndpoint.SecretKey),
        LambdaServiceUrl = lambda,
        SsmServiceUrl = ssm,
        ThrottleBaseDelay = TimeSpan.FromMilliseconds(20),
        ThrottleMaxDelay = TimeSpan.FromMilliseconds(200),
        PollInterval = TimeSpan.FromMilliseconds(20),
        PollMaxInterval = TimeSpan.FromMilliseconds(100),
        StopWait = TimeSpan.FromSeconds(5),
    };

    private static readonly HttpClient Client = new() { Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>Shell, lambda, ssm and ssm_automation executors; SSM's client is the SDK's, built as the host builds it.</summary>
    public static ExecutionRunner Runner(AwsStepSettings settings, string folder)
    {
        var ssm = SsmClient.Create(settings);
        IStepExecutor[] executors =
        [
            new ShellStepExecutor(new ShellOptions { WorkingDirectory = folder }),
            new LambdaStepExecutor(() => Client, settings),
            new SsmStepExecutor(ssm, settings),
            new SsmAutomationStepExecutor(ssm, settings),
        ];
        return new ExecutionRunner(executors, TimeProvider.System, new ExecutionOptions(), jitterSeed: 7);
    }

    public static async Task<(ExecutionOutcome Outcome, EventLog Log)> RunAsync(ExecutionRunner runner, string steps, string parameters = "",
        IReadOnlyDictionary<string, string>? values = null, ExecutionControl? control = null, EventLog? log = null)
    {
        log ??= new EventLog();
        var own = control is null;
        control ??= new ExecutionControl();
        try
        {
            var outcome = await runner.RunAsync(Engine.Plan(Engine.Runbook(steps, parameters), values), log, control, CancellationToken.None)
                .WaitAsync(EventLog.Patience);
            return (outcome, log);
        }
        finally
        {
            if (own)
                control.Dispose();
        }
    }
}
