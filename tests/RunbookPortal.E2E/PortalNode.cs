using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Npgsql;

namespace RunbookPortal.E2E;

/// <summary>
/// One more portal process (a node) with settings of the test's choosing, e.g. on a shared PostgreSQL database; the
/// built RunbookPortal.Web.dll of this configuration, on a free port, killed when disposed.
/// </summary>
public sealed class PortalNode : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();

    private PortalNode(Process process, Uri baseUrl)
    {
        _process = process;
        BaseUrl = baseUrl;
    }

    public Uri BaseUrl { get; }
    public string Log { get { lock (_log) return _log.ToString(); } }

    public static async Task<PortalNode> StartAsync(string repoRoot, IDictionary<string, string> settings)
    {
        var tfmDir = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory));
        var bin = Path.Combine(repoRoot, "src", "RunbookPortal.Web", "bin", tfmDir.Parent!.Name, "net10.0");
        var dll = Path.Combine(bin, "RunbookPortal.Web.dll");
        if (!File.Exists(dll))
            throw new InvalidOperationException($"The portal is not built: {dll} is missing.");
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            var info = new ProcessStartInfo("dotnet") { WorkingDirectory = bin, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            info.ArgumentList.Add(dll);
            info.ArgumentList.Add("--urls");
            info.ArgumentList.Add($"http://127.0.0.1:{port}");
            // Settings of the machine running the tests must not leak into the node under test.
            foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("Database__") || k.StartsWith("ConnectionStrings__")
                         || k.StartsWith("Bootstrap__") || k.StartsWith("Engine__") || k.StartsWith("Identity__")
                         || k is "DOTNET_ENVIRONMENT" or "ASPNETCORE_URLS" or "ASPNETCORE_HTTP_PORTS" or "ASPNETCORE_HTTPS_PORTS").ToList())
                info.Environment.Remove(key);
            info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
            foreach (var (k, v) in settings)
                info.Environment[k.Replace(":", "__")] = v;
            var process = Process.Start(info)!;
            var node = new PortalNode(process, new Uri($"http://127.0.0.1:{port}"));
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (node._log) node._log.AppendLine(e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (node._log) node._log.AppendLine(e.Data); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                await node.WaitForHealthAsync();
            }
            catch
            {
                await node.DisposeAsync();
                throw;
            }
            return node;
        }
    }

    private async Task WaitForHealthAsync()
    {
        using var http = new HttpClient { BaseAddress = BaseUrl, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = Stopwatch.StartNew();
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        while (true)
        {
            if (_process.HasExited)
            {
                _process.WaitForExit();
                throw new InvalidOperationException($"The portal node exited with {_process.ExitCode} before /healthz answered:\n{Log}");
            }
            try
            {
                using var response = await http.GetAsync("/healthz");
                if (response.StatusCode == HttpStatusCode.OK)
                    return;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }
            if (deadline.Elapsed > TimeSpan.FromSeconds(60))
                throw new TimeoutException($"The portal node did not answer /healthz in 60 s:\n{Log}");
            await timer.WaitForNextTickAsync();
        }
    }

    public async ValueTask DisposeAsync()
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
        }
        _process.Dispose();
    }
}

/// <summary>
/// A fresh PostgreSQL database on the server of RBP_TEST_POSTGRES (an admin connection string; default the one
/// tests/scripts/test.sh sets up), dropped when disposed. An unreachable server is a failure, never a skip.
/// </summary>
public sealed class PostgresDatabase : IAsyncDisposable
{
    private const string DefaultAdminConnection = "Host=127.0.0.1;Port=5432;Username=rbp_test;Password=rbp_test;Database=postgres";
    private readonly string _admin;
    private readonly string _name;

    private PostgresDatabase(string admin, string name)
    {
        _admin = admin;
        _name = name;
        ConnectionString = new NpgsqlConnectionStringBuilder(admin) { Database = name }.ToString();
    }

    public string ConnectionString { get; }

    public static async Task<PostgresDatabase> CreateAsync()
    {
        var admin = Environment.GetEnvironmentVariable("RBP_TEST_POSTGRES") is { Length: > 0 } configured ? configured : DefaultAdminConnection;
        var name = "rbp_e2e_" + Guid.NewGuid().ToString("N")[..16];
        try
        {
            await using var conn = new NpgsqlConnection(admin);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", conn);
            await cmd.ExecuteNonQueryAsync();
        }
        catch (Exception ex) when (ex is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
        {
            throw new InvalidOperationException(
                $"PostgreSQL is required for this test but is not reachable ({ex.Message}). Run tests/scripts/test.sh, which installs and starts it, or set RBP_TEST_POSTGRES to an admin connection string.", ex);
        }
        return new PostgresDatabase(admin, name);
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        try
        {
            await using var conn = new NpgsqlConnection(_admin);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{_name}\" WITH (FORCE)", conn);
            await cmd.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException)
        {
            // Best effort: a leftover throwaway database changes no result.
        }
    }
}
