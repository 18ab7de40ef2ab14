using System.Globalization;
using System.Text;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Benchmarks;

/// <summary>
/// <c>validate [--steps N] [--iterations N] [--warmup N]</c>: validates a generated, realistic runbook
/// (default 500 steps, every action, templates, outputs, rollbacks) and reports the time per validation.
/// Goal from issue 3: &lt; 50 ms for 500 steps.
/// </summary>
public static class ValidateBenchmark
{
    private static readonly TimeSpan Goal = TimeSpan.FromMilliseconds(50);

    public static int Run(string[] args)
    {
        var steps = Option(args, "--steps", RunbookLimits.MaxSteps);
        var iterations = Option(args, "--iterations", 200);
        var warmup = Option(args, "--warmup", 20);

        var yaml = GenerateRunbook(steps);
        var check = RunbookValidator.Validate(yaml);
        if (!check.IsValid)
        {
            Console.Error.WriteLine("The generated runbook is not valid:");
            foreach (var d in check.Diagnostics.Take(20))
                Console.Error.WriteLine($"  {d.Line}:{d.Column} [{d.Path}] {d.Message}");
            return 1;
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"validate: {steps} steps, {yaml.Split('\n').Length} lines, {Encoding.UTF8.GetByteCount(yaml) / 1024.0:0.0} KiB; {warmup} warm-up runs, {iterations} timed runs"));

        var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        RunbookValidator.Validate(yaml);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;

        var samples = Measurement.Time(() => RunbookValidator.Validate(yaml), warmup, iterations);
        Measurement.Report(samples, Goal);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  allocated {allocated / (1024.0 * 1024.0):0.0} MiB per validation"));
        return 0;
    }

    private static int Option(string[] args, string name, int fallback)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length && int.TryParse(args[index + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : fallback;
    }

    /// <summary>A runbook shaped like real ones: a mix of every action, multi-line scripts, templates and outputs.</summary>
    public static string GenerateRunbook(int steps)
    {
        var b = new StringBuilder();
        b.Append("""
            apiVersion: runbooks/v1
            name: generated-platform-rollout
            title: Generated platform rollout
            description: |
              A long rollout across many services, generated for the validation benchmark.
              Every action appears, with templates, outputs, retries, validation and rollbacks.
            type: deployment
            tags: [benchmark, deployment, platform]
            owner: team-platform
            prerequisites:
              - Release notes are approved
              - The previous rollout finished
            parameters:
              environment: { type: string, required: true, allowed: [staging, production], description: Where to roll out }
              version: { type: string, required: true, pattern: '^\d+\.\d+\.\d+$' }
              region: { type: string, default: eu-west-1, allowed: [eu-west-1, us-east-1, ap-southeast-2] }
              batch_size: { type: int, default: 5, min: 1, max: 50 }
              canary_percent: { type: int, default: 10, min: 1, max: 100 }
              dry_run: { type: bool, default: false }
              api_token: { type: secret, required: true }
              ticket: { type: string, required: true, pattern: '^CHG-\d+$' }
            approval:
              required_approvals: 2
              approver_role: Approver
              when: { environment: production }
              expires_after: 4h
            concurrency: { key: "rollout-{{ environment }}-{{ region }}", limit: 1 }
            steps:

            """);
        for (var i = 0; i < steps; i++)
        {
            var id = $"step_{i:D3}";
            var previousWithOutput = i >= 5 ? $"step_{(i / 5 - 1) * 5:D3}" : null; // every fifth step declares an output
            var reference = previousWithOutput is null ? "{{ version }}" : "{{ steps." + previousWithOutput + ".outputs.artifact }}";
            var body = (i % 7) switch
            {
                0 => ShellStep,
                1 => HttpStep,
                2 => SsmStep,
                3 => AutomationStep,
                4 => LambdaStep,
                5 => ManualStep,
                _ => WaitStep,
            };
            b.Append("  - id: ").Append(id).Append('\n');
            b.Append(CultureInfo.InvariantCulture, $"    name: Service {i % 37} — {Verbs[i % 7]} ({i})\n");
            b.Append(body.Replace("@SVC@", "service-" + (i % 37).ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("@REF@", reference, StringComparison.Ordinal));
            if (i % 5 == 0 || i % 7 == 3)
                b.Append("    outputs:\n");
            if (i % 5 == 0)
                b.Append("      artifact: 'artifact=(\\S+)'\n");
            if (i % 7 == 3)
                b.Append("      migration_id: 'migration=(\\w+)'\n");
            if (i % 10 == 0 && i % 7 == 0)
                b.Append("    rollback: { action: shell, run: \"./tools/rollback.sh {{ steps.").Append(id).Append(".outputs.artifact }}\" }\n");
        }
        return b.ToString();
    }

    private static readonly string[] Verbs = ["build", "notify", "configure", "migrate", "invoke", "confirm", "settle"];

    private const string ShellStep = """
            action: shell
            run: |
              set -euo pipefail
              echo "Rolling out {{ version }} of @SVC@ to {{ environment }}"
              ./tools/rollout.sh --service @SVC@ --version {{ version }} --batch {{ batch_size }} --dry-run={{ dry_run }}
              ./tools/wait-healthy.sh @SVC@ --from @REF@
            working_directory: /srv/rollout
            env: { ROLLOUT_TICKET: "{{ ticket }}", REGION: "{{ region }}", ATTEMPT: 1 }
            timeout: 15m
            retry: { attempts: 3, backoff: 30s }
            validate: { output_contains: "rollout complete", exit_code: 0 }

        """;

    private const string HttpStep = """
            action: http
            method: POST
            url: "https://deploy-api.example.com/v2/services/@SVC@/releases?env={{ environment }}"
            headers:
              Authorization: "Bearer {{ api_token }}"
              Content-Type: application/json
            body:
              version: "{{ version }}"
              canary: { percent: "{{ canary_percent }}", region: "{{ region }}" }
              artifact: "@REF@"
            expect_status: [200, 201, 202]
            validate:
              json: { path: "$.release.state", equals: accepted }
            timeout: 30s

        """;

    private const string SsmStep = """
            action: ssm
            document: AWS-RunShellScript
            targets: { "tag:Service": @SVC@, "tag:Env": "{{ environment }}" }
            parameters:
              commands:
                - "systemctl reload @SVC@"
                - "curl -fsS http://localhost:8080/health"
              executionTimeout: 600
            timeout: 10m
            rollback:
              action: ssm
              document: AWS-RunShellScript
              targets: { "tag:Service": @SVC@ }
              parameters: { commands: ["systemctl restart @SVC@"] }

        """;

    private const string AutomationStep = """
            action: ssm_automation
            document: Migrate-Database
            parameters:
              Service: @SVC@
              Version: "{{ version }}"
              From: "@REF@"
            timeout: 1h

        """;

    private const string LambdaStep = """
            action: lambda
            function: arn:aws:lambda:eu-west-1:123456789012:function:rollout-check
            payload:
              service: @SVC@
              version: "{{ version }}"
              checks: [latency, errors, saturation]
              thresholds: { p99_ms: 800, error_rate: 0.01 }
            validate: { regex: '"healthy":\s*true' }
            retry: { attempts: 5, backoff: 10s }

        """;

    private const string ManualStep = """
            action: manual
            instructions: >
              Confirm that @SVC@ serves {{ version }} in {{ environment }}
              and that the dashboards look normal, then continue.
            required: false

        """;

    private const string WaitStep = """
            action: wait
            duration: 1m30s

        """;
}
