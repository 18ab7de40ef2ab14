using Amazon.Runtime;
using Amazon.SimpleSystemsManagement;
using Microsoft.Extensions.Options;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps.Aws;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// Section "Aws": where the AWS steps call AWS. Credentials come from the SDK's standard chain (AWS_ACCESS_KEY_ID /
/// AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE and the shared files, container and instance roles), resolved at
/// each call, so rotated credentials are picked up.
/// </summary>
public sealed class AwsOptions
{
    public const string Section = "Aws";

    /// <summary>The region to call and sign for, e.g. <c>eu-west-1</c>; empty: <c>AWS_REGION</c>, else us-east-1.</summary>
    public string? Region { get; set; }

    /// <summary>
    /// A named profile of the shared credentials files to sign with (as AWSSDK.Extensions.NETCore.Setup reads <c>Profile</c>);
    /// empty: the standard chain, which also honours <c>AWS_PROFILE</c>.
    /// </summary>
    public string? Profile { get; set; }

    /// <summary>The credentials file <see cref="Profile"/> is read from; empty: the SDK's default (~/.aws/credentials, ~/.aws/config).</summary>
    public string? ProfilesLocation { get; set; }

    /// <summary>Endpoint overrides per service (LocalStack, tests): <c>Aws:ServiceUrl:Ssm</c>, <c>:Lambda</c>, <c>:Sns</c>.</summary>
    public AwsServiceUrls ServiceUrl { get; set; } = new();

    public string ResolvedRegion => !string.IsNullOrWhiteSpace(Region) ? Region.Trim()
        : Environment.GetEnvironmentVariable("AWS_REGION") is { Length: > 0 } fromEnvironment ? fromEnvironment
        : "us-east-1";
}

public sealed class AwsServiceUrls
{
    public string? Ssm { get; set; }
    public string? Lambda { get; set; }

    /// <summary>For SNS notifications (<see cref="Notifications.SnsPublisher"/>; the portal does not send notifications yet).</summary>
    public string? Sns { get; set; }
}

public static class AwsStepsExtensions
{
    /// <summary>The <c>IHttpClientFactory</c> client of the AWS steps (Lambda's signed calls, the SSM client's requests).</summary>
    public const string AwsStepsClient = "aws-steps";

    /// <summary>The <c>lambda</c>, <c>ssm</c> and <c>ssm_automation</c> step executors, configured from <see cref="AwsOptions"/>.</summary>
    public static IServiceCollection AddAwsSteps(this IServiceCollection services)
    {
        services.AddOptions<AwsOptions>().BindConfiguration(AwsOptions.Section)
            .Validate(o => IsUrl(o.ServiceUrl.Ssm) && IsUrl(o.ServiceUrl.Lambda) && IsUrl(o.ServiceUrl.Sns),
                "Aws:ServiceUrl:Ssm, :Lambda and :Sns must be absolute http:// or https:// URLs when set.")
            .ValidateOnStart();
        // The step's timeout is the limit (the token), not HttpClient's default 100 s.
        services.AddHttpClient(AwsStepsClient, c => c.Timeout = Timeout.InfiniteTimeSpan);
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<AwsOptions>>().Value;
            return new AwsStepSettings
            {
                Region = o.ResolvedRegion,
                Credentials = ProfileCredentials(o),
                LambdaServiceUrl = Url(o.ServiceUrl.Lambda),
                SsmServiceUrl = Url(o.ServiceUrl.Ssm),
                SnsServiceUrl = Url(o.ServiceUrl.Sns),
            };
        });
        services.AddSingleton<IAmazonSimpleSystemsManagement>(sp =>
            SsmClient.Create(sp.GetRequiredService<AwsStepSettings>(), new FactoryClients(sp.GetRequiredService<IHttpClientFactory>())));
        services.AddSingleton<IStepExecutor>(sp =>
        {
            var clients = sp.GetRequiredService<IHttpClientFactory>();
            return new LambdaStepExecutor(() => clients.CreateClient(AwsStepsClient), sp.GetRequiredService<AwsStepSettings>(), sp.GetRequiredService<TimeProvider>());
        });
        services.AddSingleton<IStepExecutor>(sp => new SsmStepExecutor(
            sp.GetRequiredService<IAmazonSimpleSystemsManagement>(), sp.GetRequiredService<AwsStepSettings>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<IStepExecutor>(sp => new SsmAutomationStepExecutor(
            sp.GetRequiredService<IAmazonSimpleSystemsManagement>(), sp.GetRequiredService<AwsStepSettings>(), sp.GetRequiredService<TimeProvider>()));
        return services;
    }

    /// <summary>The credentials of <see cref="AwsOptions.Profile"/>, or <c>null</c> for the standard chain.</summary>
    private static AWSCredentials? ProfileCredentials(AwsOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.Profile))
            return null;
        var store = string.IsNullOrWhiteSpace(o.ProfilesLocation)
            ? new Amazon.Runtime.CredentialManagement.CredentialProfileStoreChain()
            : new Amazon.Runtime.CredentialManagement.CredentialProfileStoreChain(o.ProfilesLocation);
        return store.TryGetAWSCredentials(o.Profile, out var credentials)
            ? credentials
            : throw new Data.StartupException($"Aws:Profile names the profile '{o.Profile}', which is not in {(string.IsNullOrWhiteSpace(o.ProfilesLocation) ? "the shared AWS credentials and config files" : o.ProfilesLocation)}. Add it, or unset Aws:Profile to use the standard credential chain.");
    }

    private static bool IsUrl(string? text) =>
        string.IsNullOrWhiteSpace(text) || (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps));

    private static Uri? Url(string? text) => string.IsNullOrWhiteSpace(text) ? null : new Uri(text, UriKind.Absolute);

    /// <summary>The SDK's hook for HTTP clients: one <see cref="AwsStepsClient"/> client of the factory per request, never cached by the SDK.</summary>
    private sealed class FactoryClients(IHttpClientFactory httpClients) : HttpClientFactory
    {
        public override HttpClient CreateHttpClient(IClientConfig clientConfig) => httpClients.CreateClient(AwsStepsClient);

        public override bool UseSDKHttpClientCaching(IClientConfig clientConfig) => false;

        /// <summary>Disposing a factory's client leaves its pooled handler alone.</summary>
        public override bool DisposeHttpClientsAfterUse(IClientConfig clientConfig) => true;
    }
}
