using RunbookPortal.Engine.Auditing;

namespace RunbookPortal.Engine.Tests.Auditing;

public sealed class AuditChainTests
{
    private static readonly DateTime Start = new(2026, 11, 24, 8, 0, 0, DateTimeKind.Utc);

    private static List<(AuditFacts Facts, string Hash)> Chain(int count)
    {
        var records = new List<(AuditFacts, string)>();
        var previous = AuditChain.GenesisHash;
        for (var i = 1; i <= count; i++)
        {
            var facts = new AuditFacts(i, Start.AddSeconds(i), $"user{i}@portal.test", "user.created", $"target{i}", $"{{\"n\":{i}}}", previous);
            var hash = AuditChain.ComputeHash(facts);
            records.Add((facts, hash));
            previous = hash;
        }
        return records;
    }

    private static AuditVerification Verify(IEnumerable<(AuditFacts Facts, string Hash)> records)
    {
        var verifier = new AuditChainVerifier();
        foreach (var (facts, hash) in records)
        {
            if (!verifier.Add(facts, hash))
                break;
        }
        return verifier.Result;
    }

    [Fact]
    public void IntactChain_Verifies()
    {
        var result = Verify(Chain(10));
        Assert.True(result.Valid);
        Assert.Equal(10, result.RecordsChecked);
        Assert.Null(result.FirstBrokenSeq);
    }

    [Fact]
    public void EmptyChain_IsValid() => Assert.True(Verify([]).Valid);

    [Theory]
    [InlineData("actor")]
    [InlineData("action")]
    [InlineData("target")]
    [InlineData("details")]
    [InlineData("at")]
    public void AlteringAnyField_NamesThatRecord(string field)
    {
        var chain = Chain(6);
        var (facts, hash) = chain[3];
        chain[3] = (field switch
        {
            "actor" => facts with { Actor = "mallory" },
            "action" => facts with { Action = "user.deleted" },
            "target" => facts with { Target = null },
            "details" => facts with { Details = "{}" },
            _ => facts with { At = facts.At.AddMilliseconds(1) },
        }, hash);

        var result = Verify(chain);
        Assert.False(result.Valid);
        Assert.Equal(4, result.FirstBrokenSeq);
        Assert.Equal(3, result.RecordsChecked);
        Assert.Contains("altered", result.Problem);
    }

    [Fact]
    public void RehashingAnAlteredRecord_BreaksTheLinkOfTheNextOne()
    {
        var chain = Chain(5);
        var forged = chain[1].Facts with { Actor = "mallory" };
        chain[1] = (forged, AuditChain.ComputeHash(forged));

        var result = Verify(chain);
        Assert.Equal(3, result.FirstBrokenSeq);
        Assert.Contains("does not link", result.Problem);
    }

    [Fact]
    public void RemovedRecord_IsNamed()
    {
        var chain = Chain(5);
        chain.RemoveAt(2);

        var result = Verify(chain);
        Assert.Equal(4, result.FirstBrokenSeq);
        Assert.Contains("missing", result.Problem);
    }

    [Fact]
    public void FieldBoundaries_CannotBeShiftedToForgeAHash()
    {
        var a = new AuditFacts(1, Start, "ab", "c", null, null, AuditChain.GenesisHash);
        var b = new AuditFacts(1, Start, "a", "bc", null, null, AuditChain.GenesisHash);
        var c = new AuditFacts(1, Start, "a", "bc", "", null, AuditChain.GenesisHash);
        Assert.NotEqual(AuditChain.ComputeHash(a), AuditChain.ComputeHash(b));
        Assert.NotEqual(AuditChain.ComputeHash(b), AuditChain.ComputeHash(c));
    }

    [Fact]
    public void Time_IsHashedAsUtcMicroseconds_WhateverTheKindOrSubMicrosecondTicks()
    {
        var utc = new AuditFacts(1, Start.AddTicks(3), "a", "b", null, null, AuditChain.GenesisHash);
        var unspecified = utc with { At = DateTime.SpecifyKind(Start, DateTimeKind.Unspecified) };
        Assert.Equal(AuditChain.ComputeHash(utc), AuditChain.ComputeHash(unspecified));
        Assert.NotEqual(AuditChain.ComputeHash(utc), AuditChain.ComputeHash(utc with { At = Start.AddTicks(10) }));
    }
}
