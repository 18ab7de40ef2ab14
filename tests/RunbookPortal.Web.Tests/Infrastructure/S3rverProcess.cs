using System.ComponentModel;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace RunbookPortal.Web.Tests.Infrastructure;

/// <summary>
/// A real S3 server for a test class: npm <c>s3rver@3.7.1</c> (tests/RunbookPortal.Web.Tests/s3rver) run with Node.js on
/// 127.0.0.1, on a free port, over a throwaway directory, with one bucket created at startup. s3rver accepts only the
/// credentials S3RVER/S3RVER. Installs its node_modules with <c>npm ci</c> when they are missing or stale (under a lock,
/// so test processes running at the same time do not break each other). Without Node.js the fixture fails; it never skips.
/// </summary>
public sealed class S3rverProcess : IAsyncLifetime
{
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";
    public const string Region = "us-east-1";

    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly StringBuilder _output = new();
    private Process? _process;
    private string? _dataDirectory;

    public string Bucket { get; } = "runbook-archive";
    public int Port { get; private set; }
    public string ServiceURL => $"http://127.0.0.1:{Port}";

    /// <summary>The s3rver folder of the test project, found by walking up to the repository root (the folder with RunbookPortal.sln).</summary>
    public static string PackageDirectory { get; } = FindPackageDirectory();

    public async Task InitializeAsync()
    {
        await EnsureInstalledAsync();
        _dataDirectory = Directory.CreateTempSubdirectory("rbp-s3rver-").FullName;

        // A port picked by binding port 0 can be taken by someone else before s3rver binds it: try a few.
        for (var attempt = 1; ; attempt++)
        {
            Port = FreePort();
            if (await TryStartAsync())
                return;
            if (attempt == 3)
                throw new InvalidOperationException($"s3rver did not start on 127.0.0.1 (last port {Port}). Its output:\n{Output}");
        }
    }

    public async Task DisposeAsync()
    {
        await StopAsync();
        if (_dataDirectory is not null)
        {
            try { Directory.Delete(_dataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>What s3rver wrote to stdout and stderr so far, for failure messages.</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    private async Task<bool> TryStartAsync()
    {
        var start = new ProcessStartInfo("node")
        {
            WorkingDirectory = PackageDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // --configure-bucket goes last: s3rver reads every following argument that does not start with '-' as a config file.
        foreach (var arg in new[] { Path.Combine("node_modules", "s3rver", "bin", "s3rver.js"), "--address", "127.0.0.1", "--port", Port.ToString(), "--directory", _dataDirectory!, "--configure-bucket", Bucket })
            start.ArgumentList.Add(arg);

        var process = StartOrExplain(start, "start s3rver");
        _process = process;
        process.OutputDataReceived += (_, e) => Collect(e.Data);
        process.ErrorDataReceived += (_, e) => Collect(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < StartTimeout)
        {
            if (process.HasExited)
            {
                await StopAsync();
                return false;
            }
            if (await AnswersAsync(Port))
                return true;
            await Task.Delay(50);
        }
        await StopAsync();
        throw new TimeoutException($"s3rver did not answer on 127.0.0.1:{Port} within {StartTimeout.TotalSeconds} s. Its output:\n{Output}");
    }

    private async Task StopAsync()
    {
        if (_process is not { } process)
            return;
        _process = null;
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await process.WaitForExitAsync(cts.Token);
            }
        }
        catch (InvalidOperationException)
        {
            // It exited on its own meanwhile.
        }
        catch (OperationCanceledException)
        {
            // SIGKILL was sent; not waiting any longer for the exit to be reported.
        }
        finally
        {
            process.Dispose();
        }
    }

    private void Collect(string? line)
    {
        if (line is null)
            return;
        lock (_output)
        {
            if (_output.Length < 64 * 1024)
                _output.AppendLine(line);
        }
    }

    private static async Task<bool> AnswersAsync(int port)
    {
        using var client = new TcpClient();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port, cts.Token);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>Runs <c>npm ci</c> once when node_modules is missing or older than package-lock.json, under an OS file lock.</summary>
    private static async Task EnsureInstalledAsync()
    {
        var dir = PackageDirectory;
        if (IsInstalled(dir))
            return;

        await using var held = await AcquireLockAsync(Path.Combine(dir, ".install-lock"));
        if (IsInstalled(dir)) // another test process installed it while this one waited
            return;

        CheckNode();
        var npm = new ProcessStartInfo("npm")
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "ci", "--no-audit", "--no-fund" })
            npm.ArgumentList.Add(arg);
        using var process = StartOrExplain(npm, "install s3rver (npm ci)");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(InstallTimeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"`npm ci` in {dir} did not finish within {InstallTimeout.TotalMinutes} minutes.");
        }
        if (process.ExitCode != 0 || !IsInstalled(dir))
            throw new InvalidOperationException($"`npm ci --no-audit --no-fund` in {dir} failed (exit code {process.ExitCode}):\n{await stdout}\n{await stderr}");
    }

    private static bool IsInstalled(string dir)
    {
        var script = Path.Combine(dir, "node_modules", "s3rver", "bin", "s3rver.js");
        var installed = Path.Combine(dir, "node_modules", ".package-lock.json"); // written by npm ci / npm install
        var lockFile = Path.Combine(dir, "package-lock.json");
        return File.Exists(script) && File.Exists(installed) && File.GetLastWriteTimeUtc(installed) >= File.GetLastWriteTimeUtc(lockFile);
    }

    private static void CheckNode()
    {
        var version = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        version.ArgumentList.Add("--version");
        using var process = StartOrExplain(version, "run `node --version`");
        process.WaitForExit(30_000);
    }

    private static Process StartOrExplain(ProcessStartInfo start, string purpose)
    {
        try
        {
            return Process.Start(start) ?? throw new InvalidOperationException($"Could not {purpose}: `{start.FileName}` did not start.");
        }
        catch (Win32Exception ex)
        {
            throw new InvalidOperationException(
                $"The S3 archive tests run a real S3 server (npm s3rver@3.7.1) with Node.js, but could not {purpose}: `{start.FileName}` was not found on PATH ({ex.Message}). " +
                "Install Node.js 20 or later with npm (Debian: apt-get install nodejs npm); the web project's build needs it too.", ex);
        }
    }

    private static async Task<FileStream> AcquireLockAsync(string path)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                // FileShare.None takes an OS lock (flock on Unix) that is released if the holder dies.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (waited.Elapsed < InstallTimeout)
            {
                await Task.Delay(200);
            }
        }
    }

    private static string FindPackageDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "RunbookPortal.sln")))
            {
                var package = Path.Combine(dir.FullName, "tests", "RunbookPortal.Web.Tests", "s3rver");
                return File.Exists(Path.Combine(package, "package.json"))
                    ? package
                    : throw new InvalidOperationException($"The s3rver test package is missing: {package}/package.json.");
            }
        }
        throw new InvalidOperationException($"No folder with RunbookPortal.sln above {AppContext.BaseDirectory}; the S3 tests find their s3rver package from the repository root.");
    }
}
