using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Playwright;

namespace RunbookPortal.E2E;

/// <summary>
/// All browser tests share one portal process and one Chromium, and run one after another
/// (two browsers in parallel on a 2-core machine time out).
/// </summary>
[CollectionDefinition(Name)]
public sealed class BrowserCollection : ICollectionFixture<PortalProcess>
{
    public const string Name = "browser";
}

/// <summary>
/// The real portal: the built RunbookPortal.Web.dll started with <c>dotnet</c> on a free port, against a fresh
/// SQLite database and a bootstrap administrator, plus one headless Chromium driven by Playwright.
/// </summary>
public sealed class PortalProcess : IAsyncLifetime
{
    public const string AdminEmail = "admin@e2e.test";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    private static readonly string[] ChromiumArgs =
    [
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run",
    ];

    private readonly StringBuilder _log = new();
    private readonly Lock _logLock = new();
    private Process? _process;
    private IPlaywright? _playwright;
    private IBrowser? _browser;

    public PortalProcess()
    {
        RepoRoot = FindRepoRoot();
        DataDirectory = Path.Combine(Path.GetTempPath(), "rbp-e2e-" + Guid.NewGuid().ToString("N"));
        AdminPassword = RandomString(24);
        ApiToken = "rbp_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
    }

    public string RepoRoot { get; }
    public string DataDirectory { get; }
    public string AdminPassword { get; }
    public string ApiToken { get; }
    public Uri BaseUrl { get; private set; } = null!;

    /// <summary>Folder for screenshots (git-ignored).</summary>
    public string ScreenshotDirectory => Path.Combine(RepoRoot, "tests", "RunbookPortal.E2E", "screenshots");

    public IBrowser Browser => _browser ?? throw new InvalidOperationException("The browser is not started.");

    /// <summary>Everything the portal wrote to stdout and stderr so far.</summary>
    public string Log
    {
        get
        {
            lock (_logLock)
                return _log.ToString();
        }
    }

    public async Task InitializeAsync()
    {
        try
        {
            var chromium = FindChromium();
            // A first Blazor circuit on a busy 2-core machine takes longer than Playwright's 5 s default.
            Assertions.SetDefaultExpectTimeout(15_000);
            await StartPortalAsync();
            _playwright = await Playwright.CreateAsync();
            _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = chromium,
                Headless = true,
                Args = ChromiumArgs,
            });
            Directory.CreateDirectory(ScreenshotDirectory);
        }
        catch
        {
            // xunit does not dispose a fixture whose initialisation failed: do not leave a portal running.
            await DisposeAsync();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null)
            await _browser.CloseAsync();
        _browser = null;
        _playwright?.Dispose();
        _playwright = null;

        if (_process is not null)
        {
            try
            {
                if (!_process.HasExited)
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
                }
            }
            catch (InvalidOperationException)
            {
                // Exited between the check and the kill.
            }
            _process.Dispose();
            _process = null;
        }

        try
        {
            if (Directory.Exists(DataDirectory))
                Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A file still held open; the temp folder is cleaned by the OS eventually.
        }
    }

    private async Task StartPortalAsync()
    {
        var webDir = FindWebAppDirectory();
        var port = FreeTcpPort();
        BaseUrl = new Uri($"http://127.0.0.1:{port}");
        Directory.CreateDirectory(DataDirectory);

        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        var start = new ProcessStartInfo(string.IsNullOrEmpty(dotnet) || !File.Exists(dotnet) ? "dotnet" : dotnet)
        {
            WorkingDirectory = webDir,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
        };
        start.ArgumentList.Add(Path.Combine(webDir, "RunbookPortal.Web.dll"));
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add(BaseUrl.ToString().TrimEnd('/'));

        // Settings of the machine running the tests must not leak into the portal under test.
        foreach (var key in start.Environment.Keys.ToList())
        {
            if (key.StartsWith("ConnectionStrings__", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("Database__", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("Bootstrap__", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("Identity__", StringComparison.OrdinalIgnoreCase)
                || key is "DOTNET_ENVIRONMENT" or "ASPNETCORE_URLS" or "ASPNETCORE_HTTP_PORTS" or "ASPNETCORE_HTTPS_PORTS")
                start.Environment.Remove(key);
        }
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["Database__Provider"] = "Sqlite";
        start.Environment["Database__DataDirectory"] = DataDirectory;
        start.Environment["Bootstrap__AdminEmail"] = AdminEmail;
        start.Environment["Bootstrap__AdminPassword"] = AdminPassword;
        start.Environment["Bootstrap__ApiToken"] = ApiToken;
        start.Environment["Identity__SignInAttemptsPerMinute"] = "10000"; // every test signs in from 127.0.0.1

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        if (!process.Start())
            throw new InvalidOperationException($"Could not start {start.FileName} {string.Join(' ', start.ArgumentList)}.");
        _process = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var http = new HttpClient { BaseAddress = BaseUrl, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = Stopwatch.StartNew();
        using var timer = new PeriodicTimer(PollInterval);
        string? lastProblem = null;
        while (true)
        {
            if (process.HasExited)
            {
                process.WaitForExit(); // flushes the asynchronous output readers
                throw new InvalidOperationException(
                    $"The portal exited with code {process.ExitCode} before /healthz answered.\n{LogForMessage()}");
            }
            try
            {
                using var response = await http.GetAsync("/healthz");
                if (response.StatusCode == HttpStatusCode.OK)
                    return;
                lastProblem = $"/healthz answered {(int)response.StatusCode}";
            }
            catch (HttpRequestException ex)
            {
                lastProblem = ex.Message;
            }
            catch (TaskCanceledException)
            {
                lastProblem = "/healthz did not answer within 5 s";
            }
            if (deadline.Elapsed > StartTimeout)
                throw new TimeoutException(
                    $"The portal did not answer 200 on {BaseUrl}healthz within {StartTimeout.TotalSeconds:0} s (last: {lastProblem}).\n{LogForMessage()}");
            await timer.WaitForNextTickAsync();
        }
    }

    /// <summary>The captured portal output, framed for an exception or test output.</summary>
    public string LogForMessage() => $"----- portal output -----\n{Log}\n----- end of portal output -----";

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_logLock)
            _log.AppendLine(line);
    }

    private static string FindChromium()
    {
        var path = Environment.GetEnvironmentVariable("RBP_CHROMIUM");
        if (string.IsNullOrWhiteSpace(path))
            path = "/usr/bin/chromium";
        if (!File.Exists(path))
            throw new InvalidOperationException(
                $"Chromium was not found at {path}. The end-to-end tests need a real Chromium: run tests/scripts/test.sh " +
                "(it installs one), or install it with `apt-get install -y --no-install-recommends chromium`, " +
                "or set RBP_CHROMIUM to the path of a Chromium binary.");
        return path;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "RunbookPortal.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"No folder above {AppContext.BaseDirectory} contains RunbookPortal.sln.");
    }

    /// <summary>src/RunbookPortal.Web/bin/{configuration}/net10.0, the configuration being this test assembly's.</summary>
    private string FindWebAppDirectory()
    {
        // AppContext.BaseDirectory is …/tests/RunbookPortal.E2E/bin/{configuration}/{tfm}/
        var tfmDir = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory));
        var configuration = tfmDir.Parent?.Name
            ?? throw new InvalidOperationException($"Cannot tell the build configuration from {AppContext.BaseDirectory}.");
        var dir = Path.Combine(RepoRoot, "src", "RunbookPortal.Web", "bin", configuration, "net10.0");
        if (!File.Exists(Path.Combine(dir, "RunbookPortal.Web.dll")))
            throw new InvalidOperationException(
                $"The portal is not built: {Path.Combine(dir, "RunbookPortal.Web.dll")} is missing. Build tests/RunbookPortal.E2E (it builds the web app) in {configuration}.");
        return dir;
    }

    private static int FreeTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static string RandomString(int length)
    {
        const string alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.!";
        return RandomNumberGenerator.GetString(alphabet, length);
    }
}
