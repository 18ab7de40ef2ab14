using RunbookPortal.Engine.Execution.Steps;

namespace RunbookPortal.Engine.Tests.Execution;

/// <summary>Which scripts the execution's shell may run as one external command, without a subshell.</summary>
public sealed class SingleCommandTests
{
    [Theory]
    [InlineData("/bin/true")]
    [InlineData("date -u +%FT%TZ >/dev/null")]
    [InlineData("systemctl restart nginx\n")]
    [InlineData("  ./deploy.sh --app=web --count 3  ")]
    [InlineData("kubectl rollout status deploy/\"${RBP_PARAM_APP}\" --timeout=60s")]
    [InlineData("curl -fsS https://example.com/health 2>&1")]
    [InlineData("tar -czf backup.tgz data > /dev/null 2> errors.txt")]
    [InlineData(">out.txt ls -l")]
    [InlineData("make -C build all &>> build.log")]
    [InlineData("cat <input.txt 3>&- 1>&2")]
    [InlineData("ssh user@host:22 uptime")]
    public void OneExternalCommand_MayRunDirectly(string script) => Assert.True(SingleCommand.IsExternalCommand(script), script);

    [Fact]
    public void EveryBuiltinAndReservedWordOfThisBash_IsKnown()
    {
        var start = new System.Diagnostics.ProcessStartInfo("bash", ["--noprofile", "--norc", "-c", "compgen -b -k"]) { RedirectStandardOutput = true };
        using var bash = System.Diagnostics.Process.Start(start)!;
        var words = bash.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        bash.WaitForExit();
        Assert.Contains("cd", words);
        Assert.All(words, word => Assert.True(SingleCommand.Knows(word), word));
        Assert.False(SingleCommand.Knows("systemctl"));
    }

    [Theory]
    // Builtins and reserved words would run in the shell itself.
    [InlineData("cd /tmp")]
    [InlineData("export PATH=/opt/bin")]
    [InlineData("exit 3")]
    [InlineData("exec /bin/sh")]
    [InlineData("true")]
    [InlineData("echo hello")]
    [InlineData("read line")]
    [InlineData("source env.sh")]
    [InlineData(". env.sh")]
    [InlineData("time ls")]
    [InlineData("command ls")]
    [InlineData("__rbp_own_env")]
    // Assignments, jobs, lists, pipes, groups, substitutions, quoting, globs, comments, here-documents.
    [InlineData("X=1 ./run.sh")]
    [InlineData("%1")]
    [InlineData("sleep 300 &")]
    [InlineData("ls; ls")]
    [InlineData("ls && ls")]
    [InlineData("ls | wc -l")]
    [InlineData("(ls)")]
    [InlineData("{ ls; }")]
    [InlineData("ls $(pwd)")]
    [InlineData("ls `pwd`")]
    [InlineData("ls $HOME")]
    [InlineData("ls ${x:=/}")]
    [InlineData("ls \"$HOME\"")]
    [InlineData("ls 'a b'")]
    [InlineData("ls a\\ b")]
    [InlineData("ls *.txt")]
    [InlineData("ls ~")]
    [InlineData("ls # comment")]
    [InlineData("cat <<EOF")]
    [InlineData("cat <<< text")]
    [InlineData("cat <(ls)")]
    [InlineData("ls >")]
    [InlineData("ls >&file")]
    [InlineData("ls 10>file")]
    [InlineData("\"${RBP_PARAM_CMD}\" --now")]
    [InlineData("ls\nls")]
    [InlineData("")]
    [InlineData(">/dev/null")]
    [InlineData("/bin/echo \"${BASHPID}\"")] // the shell's own, not the step's
    [InlineData("/bin/kill \"${__rbp_nonce}\"")]
    [InlineData("/bin/echo \"${RBP_lower}\"")]
    [InlineData(">x &>>log=1.txt /bin/echo hi")] // bash 5.2 cannot parse it
    [InlineData("2&>y /bin/echo hi")] // the command would be "2"
    [InlineData("ls >a=b")]
    public void AnythingElse_RunsInASubshell(string script) => Assert.False(SingleCommand.IsExternalCommand(script), script);

    [Fact]
    public void ATemplateInACommand_StaysADirectCommand_AsThePortalWritesIt()
    {
        var script = ShellQuoting.RenderScript("/bin/echo value={{ value }}", _ => "RBP_PARAM_VALUE");
        Assert.Equal("/bin/echo value=\"${RBP_PARAM_VALUE}\"", script);
        Assert.True(SingleCommand.IsExternalCommand(script));
    }
}
