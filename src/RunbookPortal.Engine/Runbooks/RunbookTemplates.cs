namespace RunbookPortal.Engine.Runbooks;

/// <summary>Small valid starting points for "new runbook", one per type; the name placeholder is <c>my-runbook</c>.</summary>
public static class RunbookTemplates
{
    /// <summary>The name every template starts with.</summary>
    public const string PlaceholderName = "my-runbook";

    /// <summary>The starting YAML for a runbook of <paramref name="type"/> (one of <see cref="RunbookTypes.All"/>).</summary>
    /// <exception cref="ArgumentException">When <paramref name="type"/> is not a runbook type.</exception>
    public static string For(string type) => type switch
    {
        RunbookTypes.Deployment => Deployment,
        RunbookTypes.Maintenance => Maintenance,
        RunbookTypes.IncidentResponse => IncidentResponse,
        RunbookTypes.BackupRestore => BackupRestore,
        RunbookTypes.Scaling => Scaling,
        RunbookTypes.Monitoring => Monitoring,
        _ => throw new ArgumentException($"'{type}' is not a runbook type; use one of: {string.Join(", ", RunbookTypes.All)}", nameof(type)),
    };

    private const string Deployment = """
        apiVersion: runbooks/v1
        name: my-runbook
        title: My deployment
        description: What this deployment does and when to run it.
        type: deployment
        tags: []
        parameters:
          version:     { type: string, required: true, pattern: '^\d+\.\d+\.\d+$' }
          environment: { type: string, required: true, allowed: [staging, production] }
        approval:
          required_approvals: 1
          when: { environment: production }
        concurrency: { key: "{{ environment }}", limit: 1 }
        steps:
          - id: deploy
            name: Deploy
            action: shell
            run: ./deploy.sh --version {{ version }} --environment {{ environment }}
            timeout: 15m
          - id: verify
            name: Verify
            action: http
            url: https://example.com/health
            expect_status: 200
            retry: { attempts: 3, backoff: 10s }

        """;

    private const string Maintenance = """
        apiVersion: runbooks/v1
        name: my-runbook
        title: My maintenance
        description: What this maintenance does and how long it takes.
        type: maintenance
        tags: []
        prerequisites:
          - A maintenance window is booked
        parameters:
          host: { type: string, required: true }
        steps:
          - id: announce
            name: Announce the window
            action: manual
            instructions: Tell the users of {{ host }} that maintenance starts now, then continue.
          - id: maintain
            name: Run the maintenance
            action: shell
            run: ./maintain.sh {{ host }}
            timeout: 30m

        """;

    private const string IncidentResponse = """
        apiVersion: runbooks/v1
        name: my-runbook
        title: My incident response
        description: First steps when this alert fires.
        type: incident_response
        tags: []
        parameters:
          service: { type: string, required: true }
        steps:
          - id: check
            name: Check the service's health
            action: http
            url: https://example.com/health
            timeout: 30s
          - id: triage
            name: Triage
            action: manual
            instructions: Look at the dashboards of {{ service }} and decide whether to continue.

        """;

    private const string BackupRestore = """
        apiVersion: runbooks/v1
        name: my-runbook
        title: My backup
        description: What is backed up, where to, and how a restore is proved.
        type: backup_restore
        tags: []
        parameters:
          database: { type: string, required: true }
        steps:
          - id: backup
            name: Take the backup
            action: shell
            run: ./backup.sh {{ database }}
            timeout: 1h
            outputs:
              location: 'stored at (\S+)'
          - id: verify
            name: Verify the backup
            action: shell
            run: ./verify-backup.sh {{ steps.backup.outputs.location }}
            validate: { exit_code: 0 }

        """;

    private const string Scaling = """
        apiVersion: runbooks/v1
        name: my-runbook
        title: My scaling
        description: What is scaled and how its health is confirmed.
        type: scaling
        tags: []
        parameters:
          capacity: { type: int, required: true, min: 1, max: 20 }
        steps:
          - id: scale
            name: Set the capacity
            action: shell
            run: ./scale.sh --capacity {{ capacity }}
            timeout: 10m
          - id: settle
            name: Let the new capacity settle
            action: wait
            duration: 2m

        """;

    private const string Monitoring = """
        apiVersion: runbooks/v1
        name: my-runbook
        title: My monitoring check
        description: What this check proves and who is told about the result.
        type: monitoring
        tags: []
        steps:
          - id: probe
            name: Probe the endpoint
            action: http
            url: https://example.com/health
            expect_status: 200
            timeout: 10s
            retry: { attempts: 3, backoff: 5s }

        """;
}
