using Amazon.Runtime;
using Amazon.SimpleSystemsManagement;

namespace RunbookPortal.Engine.Execution.Steps.Aws;

/// <summary>Builds the SSM client the ssm and ssm_automation steps share, and words SSM's refusals for a runbook author.</summary>
public static class SsmClient
{
    /// <param name="httpClients">The host's HTTP clients (IHttpClientFactory behind the SDK's hook); <c>null</c>: the SDK's own.</param>
    public static IAmazonSimpleSystemsManagement Create(AwsStepSettings settings, HttpClientFactory? httpClients = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var config = new AmazonSimpleSystemsManagementConfig { RetryMode = RequestRetryMode.Standard, MaxErrorRetry = settings.SdkRetries };
        if (httpClients is not null)
            config.HttpClientFactory = httpClients;
        if (settings.SsmServiceUrl is { } url)
        {
            config.ServiceURL = url.ToString();
            config.AuthenticationRegion = settings.Region;
        }
        else
        {
            config.RegionEndpoint = settings.RegionEndpoint;
        }
        return settings.Credentials is { } credentials
            ? new AmazonSimpleSystemsManagementClient(credentials, config)
            : new AmazonSimpleSystemsManagementClient(config);
    }

    /// <summary>What went wrong in a call to SSM, in words: unknown documents and refused credentials said plainly.</summary>
    internal static string Describe(Exception exception, string what)
    {
        switch (exception)
        {
            case AmazonServiceException service:
                var code = service.ErrorCode ?? service.StatusCode.ToString();
                if (AwsStepSettings.IsCredentialError(code))
                    return AwsStepSettings.CredentialProblem("SSM", code, service.Message);
                if (AwsStepSettings.IsThrottling(service.StatusCode, code))
                    return $"SSM kept throttling {what} ({code}: {service.Message}), after the SDK's retries";
                return code switch
                {
                    "InvalidDocument" or "InvalidDocumentException" => $"SSM does not know the document of {what}, or it is not a command document ({code}: {service.Message})",
                    "AutomationDefinitionNotFoundException" or "AutomationDefinitionNotFound" => $"SSM does not know the Automation document of {what} ({code}: {service.Message})",
                    "AccessDeniedException" => $"the portal's AWS identity may not do {what} ({code}: {service.Message})",
                    _ => $"SSM refused {what} ({code}: {service.Message})",
                };
            case AmazonClientException client when client.Message.Contains("credential", StringComparison.OrdinalIgnoreCase):
                return AwsStepSettings.NoCredentials(client.Message);
            default:
                return $"the call to SSM for {what} failed: {exception.Message}";
        }
    }

    /// <summary>Whether SSM said to slow down (the SDK retried already; a poll may simply wait longer).</summary>
    internal static bool IsThrottling(Exception exception) =>
        exception is AmazonServiceException service && AwsStepSettings.IsThrottling(service.StatusCode, service.ErrorCode);

    /// <summary>Whether <paramref name="exception"/> is worth a short wait and another poll rather than failing the step.</summary>
    internal static bool IsTransient(Exception exception) =>
        IsThrottling(exception) || exception is AmazonServiceException { StatusCode: >= System.Net.HttpStatusCode.InternalServerError } || exception is HttpRequestException;
}
