namespace RunbookPortal.Web.Features.Runbooks;

/// <summary>How runbook types and statuses read in the UI.</summary>
public static class RunbookText
{
    public static string TypeLabel(string type) => type switch
    {
        "deployment" => "Deployment",
        "maintenance" => "Maintenance",
        "incident_response" => "Incident response",
        "backup_restore" => "Backup & restore",
        "scaling" => "Scaling",
        "monitoring" => "Monitoring",
        _ => type,
    };

    public static string StatusLabel(string status) => status switch
    {
        "InReview" => "In review",
        _ => status,
    };
}
