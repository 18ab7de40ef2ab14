using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Web.Data;

/// <summary>
/// The portal's one store. Each provider has a subclass only so that its migrations live apart
/// (Data/Migrations/Sqlite, Data/Migrations/Postgres); the model is the same.
/// </summary>
public abstract class PortalDbContext(DbContextOptions options) : IdentityDbContext<PortalUser>(options), IDataProtectionKeyContext
{
    /// <summary>Keys that protect cookies and antiforgery tokens, shared by every node of the portal.</summary>
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();
    public DbSet<ApiToken> ApiTokens => Set<ApiToken>();
    public DbSet<AuditRecord> AuditRecords => Set<AuditRecord>();
    public DbSet<Runbook> Runbooks => Set<Runbook>();
    public DbSet<RunbookVersion> RunbookVersions => Set<RunbookVersion>();
    public DbSet<RunbookTag> RunbookTags => Set<RunbookTag>();
    public DbSet<Execution> Executions => Set<Execution>();
    public DbSet<ExecutionStepRecord> ExecutionSteps => Set<ExecutionStepRecord>();
    public DbSet<ExecutionEventRecord> ExecutionEvents => Set<ExecutionEventRecord>();
    public DbSet<RunbookVersionTransition> RunbookVersionTransitions => Set<RunbookVersionTransition>();
    public DbSet<ApprovalRequest> ApprovalRequests => Set<ApprovalRequest>();
    public DbSet<ApprovalDecision> ApprovalDecisions => Set<ApprovalDecision>();

    protected override void OnModelCreating(ModelBuilder builder)
    {
        base.OnModelCreating(builder);

        builder.Entity<ApiToken>(t =>
        {
            t.ToTable("ApiTokens");
            t.HasKey(x => x.Id);
            t.Property(x => x.Name).HasMaxLength(100);
            t.Property(x => x.TokenHash).HasMaxLength(64);
            t.Property(x => x.Prefix).HasMaxLength(16);
            t.Property(x => x.CreatedBy).HasMaxLength(256);
            t.Property(x => x.RevokedBy).HasMaxLength(256);
            t.HasIndex(x => x.TokenHash).IsUnique();
            t.HasOne(x => x.User).WithMany().HasForeignKey(x => x.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<AuditRecord>(a =>
        {
            a.ToTable("AuditRecords");
            a.HasKey(x => x.Id);
            a.HasIndex(x => x.Seq).IsUnique();
            a.HasIndex(x => x.At);
            a.HasIndex(x => x.Actor);
            a.HasIndex(x => x.Action);
            a.Property(x => x.Actor).HasMaxLength(256);
            a.Property(x => x.Action).HasMaxLength(100);
            a.Property(x => x.Target).HasMaxLength(512);
            a.Property(x => x.PreviousHash).HasMaxLength(64);
            a.Property(x => x.Hash).HasMaxLength(64);
        });

        builder.Entity<Runbook>(r =>
        {
            r.ToTable("Runbooks");
            r.HasKey(x => x.Id);
            r.HasIndex(x => x.Name).IsUnique();
            r.HasIndex(x => x.Type);
            r.HasIndex(x => x.Status);
            r.HasIndex(x => x.Owner);
            r.Property(x => x.Name).HasMaxLength(63);
            r.Property(x => x.Title).HasMaxLength(200);
            r.Property(x => x.Type).HasMaxLength(40);
            r.Property(x => x.Owner).HasMaxLength(100);
            r.Property(x => x.CreatedBy).HasMaxLength(256);
            r.Property(x => x.Status).HasConversion<string>().HasMaxLength(20);
            r.HasMany(x => x.Versions).WithOne(v => v.Runbook).HasForeignKey(v => v.RunbookId).OnDelete(DeleteBehavior.Cascade);
            r.HasMany(x => x.TagLinks).WithOne().HasForeignKey(t => t.RunbookId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<RunbookTag>(t =>
        {
            t.ToTable("RunbookTags");
            t.HasKey(x => new { x.RunbookId, x.Tag });
            t.HasIndex(x => x.Tag);
            t.Property(x => x.Tag).HasMaxLength(100);
        });

        builder.Entity<RunbookVersion>(v =>
        {
            v.ToTable("RunbookVersions");
            v.HasKey(x => x.Id);
            v.HasIndex(x => new { x.RunbookId, x.Version }).IsUnique();
            v.Property(x => x.Status).HasConversion<string>().HasMaxLength(20);
            v.Property(x => x.ArchiveState).HasConversion<string>().HasMaxLength(20);
            // At most one Active version per runbook, whatever races happen.
            v.HasIndex(x => x.RunbookId, "IX_RunbookVersions_OneActive").IsUnique().HasFilter("\"Status\" = 'Active'");
            v.HasIndex(x => x.ArchiveState);
            v.Property(x => x.Author).HasMaxLength(256);
            v.Property(x => x.ReviewedBy).HasMaxLength(256);
            v.HasMany(x => x.Transitions).WithOne().HasForeignKey(t => t.RunbookVersionId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<Execution>(e =>
        {
            e.ToTable("Executions");
            e.HasKey(x => x.Id);
            e.Property(x => x.Status).HasConversion<string>().HasMaxLength(20);
            e.Property(x => x.Mode).HasConversion<string>().HasMaxLength(20);
            e.Property(x => x.RunbookName).HasMaxLength(63);
            e.Property(x => x.RequestedBy).HasMaxLength(256);
            e.Property(x => x.CancelRequestedBy).HasMaxLength(256);
            e.Property(x => x.RollbackStopRequestedBy).HasMaxLength(256);
            e.Property(x => x.ConcurrencyKey).HasMaxLength(ConcurrencyPolicy.MaxKeyLength);
            e.Property(x => x.IdempotencyKey).HasMaxLength(Execution.MaxIdempotencyKeyLength);
            // One execution per key and requester, whatever races happen (two retries at once start one run).
            e.HasIndex(x => new { x.RequestedBy, x.IdempotencyKey }).IsUnique().HasFilter("\"IdempotencyKey\" IS NOT NULL");
            e.Property(x => x.LeaseOwner).HasMaxLength(200);
            e.Property(x => x.CurrentStepId).HasMaxLength(100);
            e.Property(x => x.FailedStepId).HasMaxLength(100);
            e.Property(x => x.LastSeq).IsConcurrencyToken();
            e.Property(x => x.InputRole).HasMaxLength(40);
            e.Property(x => x.InputStepId).HasMaxLength(100);
            e.Property(x => x.InputDecision).HasMaxLength(20);
            e.Property(x => x.InputBy).HasMaxLength(256);
            e.Property(x => x.InputComment).HasMaxLength(2000);
            e.HasIndex(x => new { x.Status, x.InputDeadline });
            e.HasIndex(x => new { x.Status, x.RequestedAt });
            e.HasIndex(x => new { x.ConcurrencyKey, x.Status });
            e.HasIndex(x => x.RunbookName);
            e.HasIndex(x => x.RequestedAt);
            e.HasMany(x => x.Steps).WithOne().HasForeignKey(s => s.ExecutionId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<ExecutionStepRecord>(s =>
        {
            s.ToTable("ExecutionSteps");
            s.HasKey(x => new { x.ExecutionId, x.StepId });
            s.Property(x => x.StepId).HasMaxLength(100);
            s.Property(x => x.Name).HasMaxLength(200);
            s.Property(x => x.Action).HasMaxLength(40);
            s.Property(x => x.Status).HasConversion<string>().HasMaxLength(20);
        });

        builder.Entity<ExecutionEventRecord>(ev =>
        {
            ev.ToTable("ExecutionEvents");
            ev.HasKey(x => x.Id);
            ev.HasIndex(x => new { x.ExecutionId, x.Seq }).IsUnique();
            ev.Property(x => x.Kind).HasMaxLength(60);
            ev.Property(x => x.StepId).HasMaxLength(100);
        });

        builder.Entity<ApprovalRequest>(a =>
        {
            a.ToTable("ApprovalRequests");
            a.HasKey(x => x.Id);
            a.HasIndex(x => x.ExecutionId).IsUnique();
            a.HasIndex(x => new { x.Status, x.ExpiresAt });
            a.HasIndex(x => x.RequestedBy);
            a.Property(x => x.RunbookName).HasMaxLength(63);
            a.Property(x => x.RequestedBy).HasMaxLength(256);
            a.Property(x => x.RequestComment).HasMaxLength(2000);
            a.Property(x => x.ApproverRole).HasMaxLength(40);
            a.Property(x => x.ParametersHash).HasMaxLength(64);
            a.Property(x => x.Status).HasConversion<string>().HasMaxLength(20);
            a.Property(x => x.Revision).IsConcurrencyToken();
            a.HasMany(x => x.Decisions).WithOne().HasForeignKey(d => d.ApprovalRequestId).OnDelete(DeleteBehavior.Cascade);
        });

        builder.Entity<ApprovalDecision>(d =>
        {
            d.ToTable("ApprovalDecisions");
            d.HasKey(x => x.Id);
            d.HasIndex(x => new { x.ApprovalRequestId, x.By }).IsUnique();
            d.Property(x => x.By).HasMaxLength(256);
            d.Property(x => x.Comment).HasMaxLength(2000);
        });

        builder.Entity<RunbookVersionTransition>(t =>
        {
            t.ToTable("RunbookVersionTransitions");
            t.HasKey(x => x.Id);
            t.Property(x => x.Actor).HasMaxLength(256);
            t.Property(x => x.Action).HasMaxLength(40);
            t.Property(x => x.From).HasConversion<string>().HasMaxLength(20);
            t.Property(x => x.To).HasConversion<string>().HasMaxLength(20);
        });
    }

    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        // Every time is UTC; SQLite forgets the kind, so it is restored on the way out.
        configurationBuilder.Properties<DateTime>().HaveConversion<UtcDateTimeConverter>();
        configurationBuilder.Properties<DateTime?>().HaveConversion<NullableUtcDateTimeConverter>();
    }

    private sealed class UtcDateTimeConverter() : ValueConverter<DateTime, DateTime>(
        v => v.Kind == DateTimeKind.Utc ? v : v.ToUniversalTime(),
        v => DateTime.SpecifyKind(v, DateTimeKind.Utc));

    private sealed class NullableUtcDateTimeConverter() : ValueConverter<DateTime?, DateTime?>(
        v => v.HasValue ? (v.Value.Kind == DateTimeKind.Utc ? v : v.Value.ToUniversalTime()) : v,
        v => v.HasValue ? DateTime.SpecifyKind(v.Value, DateTimeKind.Utc) : v);
}

public sealed class SqlitePortalDbContext(DbContextOptions<SqlitePortalDbContext> options) : PortalDbContext(options);

public sealed class PostgresPortalDbContext(DbContextOptions<PostgresPortalDbContext> options) : PortalDbContext(options);

/// <summary>Used only by `dotnet ef migrations add --context SqlitePortalDbContext`.</summary>
public sealed class SqliteDesignTimeFactory : IDesignTimeDbContextFactory<SqlitePortalDbContext>
{
    public SqlitePortalDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<SqlitePortalDbContext>().UseSqlite("Data Source=design.db").Options);
}

/// <summary>Used only by `dotnet ef migrations add --context PostgresPortalDbContext`.</summary>
public sealed class PostgresDesignTimeFactory : IDesignTimeDbContextFactory<PostgresPortalDbContext>
{
    public PostgresPortalDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<PostgresPortalDbContext>().UseNpgsql("Host=localhost;Database=design").Options);
}
