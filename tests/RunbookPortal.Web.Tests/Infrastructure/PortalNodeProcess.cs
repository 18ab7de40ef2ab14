using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace RunbookPortal.Web.Tests.Infrastructure;

/// <summary>
/// The portal as a real separate process (a second node), so a test can kill it the hard way: no graceful
/// shutdown, no lease released.
/// </summary>
public sealed class PortalNodeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();

    public Uri BaseAddress { get; }
    public string Log { get { lock (_log) return _log.ToString(); } }

    private PortalNodeProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
    }

    /// <summary>Runs the portal expecting it to refuse to start; answers its exit code and everything it printed.</summary>
    public static async Task<(int ExitCode, string Output)> RunUntilExitAsync(IDictionary<string, string> settings, TimeSpan timeout)
    {
        var info = StartInfo(settings, FreePort());
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The portal did not exit within {timeout}: it started instead of refusing.\n{await stdout}{await stderr}");
        }
        return (process.ExitCode, await stdout + await stderr);
    }

    public static async Task<PortalNodeProcess> StartAsync(IDictionary<string, string> settings)
    {
        var port = FreePort();
        var info = StartInfo(settings, port);
        var process = Process.Start(info)!;
        var node = new PortalNodeProcess(process, new Uri($"http://127.0.0.1:{port}"));
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (node._log) node._log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (node._log) node._log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var http = new HttpClient { BaseAddress = node.BaseAddress };
        var started = DateTime.UtcNow;
        var deadline = started.AddSeconds(60);
        string? lastAnswer = null;
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"The portal node exited with {process.ExitCode}:\n{node.Log}");
            try
            {
                using var answer = await http.GetAsync("/healthz");
                if (answer.StatusCode == HttpStatusCode.OK)
                    return node;
                lastAnswer = $"{(int)answer.StatusCode} {await answer.Content.ReadAsStringAsync()}";
            }
            catch (HttpRequestException ex)
            {
                lastAnswer = ex.Message;
            }
            if (DateTime.UtcNow > deadline)
            {
                // What tells a busy machine (little CPU time in 60 s) from a node stuck on something (its log says where).
                process.Refresh();
                throw new TimeoutException($"The portal node did not answer /healthz in 60 s (last answer: {lastAnswer}; " +
                    $"it used {process.TotalProcessorTime.TotalSeconds:F1} s of CPU and {process.Threads.Count} threads):\n{node.Log}");
            }
            await Task.Delay(100);
        }
    }

    private static ProcessStartInfo StartInfo(IDictionary<string, string> settings, int port)
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "RunbookPortal.sln")))
            root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("The repository root was not found.");
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        var bin = Path.Combine(root, "src", "RunbookPortal.Web", "bin", configuration, "net10.0");
        var dll = Path.Combine(bin, "RunbookPortal.Web.dll");
        if (!File.Exists(dll))
            throw new InvalidOperationException($"The web app is not built at {dll}.");

        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = bin, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        info.ArgumentList.Add("--urls");
        info.ArgumentList.Add($"http://127.0.0.1:{port}");
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("Database__") || k.StartsWith("ConnectionStrings__") || k.StartsWith("Bootstrap__") || k.StartsWith("Engine__")).ToList())
            info.Environment.Remove(key);
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        info.Environment["Logging__Console__FormatterName"] = "simple";
        foreach (var (k, v) in settings)
            info.Environment[k.Replace(":", "__")] = v;
        return info;
    }

    /// <summary>Kills the node at once (SIGKILL to the whole tree), like a machine that dies.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
    }

    public ValueTask DisposeAsync()
    {
        Kill();
        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
