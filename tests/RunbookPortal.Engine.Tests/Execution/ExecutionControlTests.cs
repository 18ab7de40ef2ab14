using RunbookPortal.Engine.Execution;

namespace RunbookPortal.Engine.Tests.Execution;

public sealed class ExecutionControlTests
{
    [Fact]
    public void AStopOrCancel_ThatArrivesAfterTheRunEnded_IsIgnored_AndItsTokensStayReadable()
    {
        // A node stopping (RequestStopAll) can reach a run's control just as that run ends and disposes it.
        var control = new ExecutionControl();
        control.Dispose();

        control.RequestStop();
        control.Cancel("oncall", rollback: true);
        control.Dispose();

        Assert.False(control.StopToken.IsCancellationRequested);
        Assert.False(control.CancelToken.IsCancellationRequested);
        Assert.Null(control.CancelledBy);
    }

    [Fact]
    public void Cancel_BeforeTheEnd_CancelsAndSaysByWhom()
    {
        using var control = new ExecutionControl();
        control.Cancel("oncall", rollback: true);
        control.RequestStop();
        Assert.True(control.CancelToken.IsCancellationRequested);
        Assert.True(control.StopToken.IsCancellationRequested);
        Assert.Equal("oncall", control.CancelledBy);
        Assert.True(control.RollbackOnCancel);
    }
}
