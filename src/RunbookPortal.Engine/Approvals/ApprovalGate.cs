using System.Security.Cryptography;
using System.Text;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Approvals;

/// <summary>When a runbook's approval policy applies, how it reads to a person, and what an approval is bound to.</summary>
public static class ApprovalGate
{
    /// <summary>The policy that applies to a (non-dry) run with these values, or null when the run needs no sign-off.</summary>
    public static ApprovalPolicy? For(RunbookDefinition definition, IReadOnlyDictionary<string, string> values, bool dryRun)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(values);
        return !dryRun && definition.Approval is { } policy && Applies(definition, policy, values) ? policy : null;
    }

    /// <summary>
    /// Every <c>when</c> condition holds (none: always). Typed values compare by meaning, not spelling: for an int
    /// parameter <c>01</c> is <c>1</c>, for a bool <c>TRUE</c> is <c>true</c>, so no other spelling slips past the gate.
    /// </summary>
    private static bool Applies(RunbookDefinition definition, ApprovalPolicy policy, IReadOnlyDictionary<string, string> values) =>
        policy.When.All(w => values.TryGetValue(w.Key, out var v) && (definition.FindParameter(w.Key) is { } p
            ? string.Equals(p.Canonical(v), p.Canonical(w.Value), StringComparison.Ordinal)
            : string.Equals(v, w.Value, StringComparison.Ordinal)));

    /// <summary>"environment=production: 2 approvals from Approver, within 4h".</summary>
    public static string Describe(ApprovalPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        var when = policy.When.Count == 0 ? "every run" : string.Join(", ", policy.When.Select(w => $"{w.Key}={w.Value}"));
        var count = policy.RequiredApprovals == 1 ? "1 approval" : $"{policy.RequiredApprovals} approvals";
        var within = policy.ExpiresAfter is { } e ? $", within {DurationParser.Format(e)}" : "";
        return $"{when}: {count} from {policy.ApproverRole}{within}";
    }

    /// <summary>
    /// What an approval is bound to besides the version: a hash of the run's shown parameter values and of its sealed
    /// secrets (the ciphertext that will be opened to run it), so nothing approved can change unseen.
    /// </summary>
    public static string ParametersHash(string parametersJson, string? sealedSecrets)
    {
        ArgumentNullException.ThrowIfNull(parametersJson);
        var bytes = Encoding.UTF8.GetBytes(parametersJson + "\n" + (sealedSecrets ?? ""));
        return Convert.ToHexStringLower(SHA256.HashData(bytes));
    }
}
