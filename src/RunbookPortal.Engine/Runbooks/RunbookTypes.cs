namespace RunbookPortal.Engine.Runbooks;

/// <summary>The runbook types of <c>runbooks/v1</c>.</summary>
public static class RunbookTypes
{
    public const string Deployment = "deployment";
    public const string Maintenance = "maintenance";
    public const string IncidentResponse = "incident_response";
    public const string BackupRestore = "backup_restore";
    public const string Scaling = "scaling";
    public const string Monitoring = "monitoring";

    public static IReadOnlyList<string> All { get; } =
        Array.AsReadOnly([Deployment, Maintenance, IncidentResponse, BackupRestore, Scaling, Monitoring]);

    /// <summary>A label for people: <c>incident_response</c> → "Incident response".</summary>
    public static string DisplayName(string type) =>
        string.IsNullOrEmpty(type) ? type : char.ToUpperInvariant(type[0]) + type[1..].Replace('_', ' ');
}
