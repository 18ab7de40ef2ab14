using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace RunbookPortal.Engine.Auditing;

/// <summary>The fields of one audit record that its hash covers.</summary>
public sealed record AuditFacts(
    long Seq,
    DateTime At,
    string Actor,
    string Action,
    string? Target,
    string? Details,
    string PreviousHash);

/// <summary>The outcome of checking a chain: valid, or the first record that does not fit.</summary>
public sealed record AuditVerification(bool Valid, long RecordsChecked, long? FirstBrokenSeq, string? Problem);

/// <summary>
/// Hash chain of the audit trail: every record's hash covers its own fields and the hash of the record
/// before it, so changing, removing or reordering any stored record breaks the chain at that record.
/// </summary>
public static class AuditChain
{
    /// <summary>The previous-hash of the first record.</summary>
    public const string GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000";

    /// <summary>Timestamps are kept in UTC at microsecond precision, the finest every store holds exactly.</summary>
    public static DateTime Normalize(DateTime at)
    {
        var utc = at.Kind switch
        {
            DateTimeKind.Utc => at,
            DateTimeKind.Local => at.ToUniversalTime(),
            _ => DateTime.SpecifyKind(at, DateTimeKind.Utc),
        };
        return new DateTime(utc.Ticks - (utc.Ticks % 10), DateTimeKind.Utc);
    }

    public static string ComputeHash(AuditFacts facts)
    {
        // Length-prefixed fields: no choice of values can make two different records serialize alike.
        var sb = new StringBuilder();
        Append(sb, facts.Seq.ToString(CultureInfo.InvariantCulture));
        Append(sb, Normalize(facts.At).ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", CultureInfo.InvariantCulture));
        Append(sb, facts.Actor);
        Append(sb, facts.Action);
        Append(sb, facts.Target);
        Append(sb, facts.Details);
        Append(sb, facts.PreviousHash);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }

    private static void Append(StringBuilder sb, string? value)
    {
        if (value is null)
        {
            sb.Append("-1:|");
            return;
        }
        sb.Append(value.Length.ToString(CultureInfo.InvariantCulture)).Append(':').Append(value).Append('|');
    }
}

/// <summary>
/// Checks records fed in sequence order (so a long trail can be streamed in batches) and remembers the
/// first one whose sequence, link or hash is wrong.
/// </summary>
public sealed class AuditChainVerifier
{
    private string _expectedPrevious = AuditChain.GenesisHash;
    private long _expectedSeq = 1;
    private long _checked;
    private AuditVerification? _failure;

    /// <summary>Adds the next record; answers false once the chain is broken (further records are ignored).</summary>
    public bool Add(AuditFacts facts, string storedHash)
    {
        if (_failure is not null)
            return false;

        string? problem = null;
        if (facts.Seq != _expectedSeq)
            problem = facts.Seq > _expectedSeq
                ? $"Record {facts.Seq} follows record {_expectedSeq - 1}: {facts.Seq - _expectedSeq} record(s) before it are missing."
                : $"Record {facts.Seq} is out of order: record {_expectedSeq} was expected.";
        else if (!string.Equals(facts.PreviousHash, _expectedPrevious, StringComparison.Ordinal))
            problem = $"Record {facts.Seq} does not link to the hash of the record before it.";
        else if (!string.Equals(AuditChain.ComputeHash(facts), storedHash, StringComparison.Ordinal))
            problem = $"Record {facts.Seq} was altered: its content does not match its hash.";

        if (problem is not null)
        {
            _failure = new AuditVerification(false, _checked, facts.Seq, problem);
            return false;
        }

        _expectedPrevious = storedHash;
        _expectedSeq++;
        _checked++;
        return true;
    }

    public AuditVerification Result => _failure ?? new AuditVerification(true, _checked, null, null);
}
