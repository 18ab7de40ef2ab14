using Amazon.Runtime;
using Amazon.SimpleSystemsManagement;
using Amazon.SimpleSystemsManagement.Model;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution.Steps.Aws;

/// <summary>
/// Reads the values of a runbook's <c>from: ssm:/path</c> secret parameters from SSM Parameter Store (GetParameter with
/// decryption) when a run starts. The values go into the run's plan only: the host never stores them, and the runner
/// masks them like every secret. A parameter that is missing, or that the portal may not read or decrypt, fails the
/// start (<see cref="ParameterStoreException"/>) with a message naming the runbook parameter and the SSM parameter, never a value.
/// </summary>
public static class ParameterStoreSecrets
{
    /// <summary>Whether <paramref name="runbook"/> has a parameter read from Parameter Store.</summary>
    public static bool AnyIn(RunbookDefinition runbook) => runbook?.Parameters.Any(p => p.FromSsm is not null) ?? false;

    public static async Task<IReadOnlyDictionary<string, string>> FetchAsync(IAmazonSimpleSystemsManagement ssm, RunbookDefinition runbook, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ssm);
        ArgumentNullException.ThrowIfNull(runbook);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var parameter in runbook.Parameters.Where(p => p.FromSsm is not null))
        {
            var name = parameter.FromSsm!;
            string value;
            try
            {
                var answer = await ssm.GetParameterAsync(new GetParameterRequest { Name = name, WithDecryption = true }, cancellationToken).ConfigureAwait(false);
                value = answer.Parameter?.Value ?? "";
            }
            catch (AmazonServiceException ex)
            {
                throw new ParameterStoreException(ex.ErrorCode switch
                {
                    "ParameterNotFound" or "ParameterNotFoundException" =>
                        $"the secret parameter '{parameter.Name}' comes from the SSM parameter {name}, which does not exist (or not in this region)",
                    "ParameterVersionNotFound" or "ParameterVersionNotFoundException" =>
                        $"the secret parameter '{parameter.Name}' comes from the SSM parameter {name}, and that version does not exist",
                    "AccessDeniedException" =>
                        $"the secret parameter '{parameter.Name}' comes from the SSM parameter {name}, which the portal's AWS identity may not read ({ex.Message})",
                    "InvalidKeyId" or "InvalidKeyIdException" or "KMSAccessDeniedException" =>
                        $"the secret parameter '{parameter.Name}' comes from the SSM parameter {name}, which the portal cannot decrypt ({ex.ErrorCode}: {ex.Message})",
                    _ => $"the secret parameter '{parameter.Name}' could not be read from the SSM parameter {name}: {SsmClient.Describe(ex, "GetParameter")}",
                });
            }
            catch (AmazonClientException ex)
            {
                throw new ParameterStoreException($"the secret parameter '{parameter.Name}' could not be read from the SSM parameter {name}: {SsmClient.Describe(ex, "GetParameter")}");
            }
            if (value.Length == 0 && parameter.Required)
                throw new ParameterStoreException($"the secret parameter '{parameter.Name}' is required, and the SSM parameter {name} is empty");
            if (value.Length > 0 && parameter.CheckValue(value) is { } problem)
                throw new ParameterStoreException($"the value of the SSM parameter {name} does not fit the secret parameter '{parameter.Name}': it {problem}");
            values[parameter.Name] = value;
        }
        return values;
    }
}

/// <summary>A secret parameter could not be read from Parameter Store; the message says which and why (never a value).</summary>
/// <remarks>It carries no inner exception: a host reports the base exception's message, which must be this one.</remarks>
public sealed class ParameterStoreException(string message) : Exception(message);
