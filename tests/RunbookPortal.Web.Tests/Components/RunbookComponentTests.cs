using Bunit;
using RunbookPortal.Engine.Runbooks;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Runbooks;

namespace RunbookPortal.Web.Tests.Components;

public sealed class RunbookComponentTests : PortalBunitContext
{
    private static CatalogPage Page(params string[] names) => new(
        names.Select(n => new CatalogItem(n, $"Title of {n}", "What it does", "maintenance", ["logs"], "team-ops", RunbookVersionStatus.Active, 2, 2, DateTime.UtcNow)).ToList(),
        names.Length,
        new CatalogFacets(
            [new FacetValue("deployment", 3), new FacetValue("maintenance", 5)],
            [new FacetValue("logs", 4)],
            [new FacetValue("Active", 6), new FacetValue("InReview", 2)],
            [new FacetValue("team-ops", 8)]));

    [Fact]
    public void CatalogFacet_Click_SelectsTheValue_AndASecondClickClearsIt()
    {
        SignInAs("author@portal.test", "Author");
        CatalogQuery? changed = null;
        var cut = Render<CatalogView>(p => p
            .Add(c => c.Page, Page("rotate-logs"))
            .Add(c => c.Query, new CatalogQuery())
            .Add(c => c.QueryChanged, q => changed = q));

        cut.Find("[data-testid=facet-type] [data-value=deployment]").Click();
        Assert.Equal("deployment", changed!.Type);

        cut.Render(p => p.Add(c => c.Query, changed));
        Assert.Equal("deployment", cut.Instance.Query.Type);
        Assert.Equal("true", cut.Find("[data-testid=facet-type] [data-value=deployment]").GetAttribute("aria-pressed"));
        Assert.Contains("Type: Deployment", cut.Find("[data-testid=active-filters]").TextContent);

        cut.Find("[data-testid=facet-type] [data-value=deployment]").Click();
        Assert.Null(changed!.Type);
    }

    [Fact]
    public void CatalogFacets_ShowCounts_AndStatusReadsForPeople()
    {
        var cut = Render<CatalogView>(p => p.Add(c => c.Page, Page("a", "b")).Add(c => c.Query, new CatalogQuery()));

        Assert.Contains("5", cut.Find("[data-testid=facet-type] [data-value=maintenance]").TextContent);
        Assert.Contains("In review", cut.Find("[data-testid=facet-status] [data-value=InReview]").TextContent);
        Assert.Equal(2, cut.FindAll("[data-testid=catalog-item]").Count);
        Assert.Equal("2 runbooks", cut.Find("[data-testid=catalog-count]").TextContent.Trim());
    }

    [Fact]
    public void CatalogFilterChip_Removes_OnlyThatFilter()
    {
        CatalogQuery? changed = null;
        var query = new CatalogQuery(Search: "logs", Tag: "logs", Page: 2);
        var cut = Render<CatalogView>(p => p.Add(c => c.Page, Page("a")).Add(c => c.Query, query).Add(c => c.QueryChanged, q => changed = q));

        var chips = cut.FindAll("[data-testid=active-filters] .mud-chip");
        Assert.Equal(2, chips.Count);
        chips.Single(c => c.TextContent.Contains("Tag: logs")).QuerySelector(".mud-chip-close-button")!.Click();

        Assert.Null(changed!.Tag);
        Assert.Equal("logs", changed.Search);
        Assert.Equal(0, changed.Page);
    }

    [Fact]
    public void Catalog_EmptyStates_TellNewUsersWhatToDo_AndFilteredUsersToWiden()
    {
        var empty = new CatalogPage([], 0, new CatalogFacets([], [], [], []));
        var fresh = Render<CatalogView>(p => p.Add(c => c.Page, empty).Add(c => c.Query, new CatalogQuery()));
        Assert.Contains("No runbooks yet", fresh.Find("[data-testid=catalog-empty]").TextContent);

        var filtered = Render<CatalogView>(p => p.Add(c => c.Page, empty).Add(c => c.Query, new CatalogQuery(Search: "zzz")));
        Assert.Contains("No runbook matches", filtered.Find("[data-testid=catalog-empty]").TextContent);
    }

    [Fact]
    public void DiffView_ShowsRemovedAndAddedLinesSideBySide()
    {
        var cut = Render<DiffView>(p => p
            .Add(d => d.OldText, "name: a\nrun: echo one\nkeep: yes\n")
            .Add(d => d.NewText, "name: a\nrun: echo two\nkeep: yes\nextra: line\n")
            .Add(d => d.OldLabel, "Version 1")
            .Add(d => d.NewLabel, "Version 2"));

        Assert.Contains("Version 1", cut.Find(".rbp-diff-header").TextContent);
        Assert.Contains("Version 2", cut.Find(".rbp-diff-header").TextContent);
        var changedLeft = cut.FindAll("td[data-change=Modified], td[data-change=Deleted]").Select(td => td.TextContent).ToList();
        Assert.Contains("run: echo one", changedLeft);
        Assert.Contains("run: echo two", changedLeft);
        Assert.Contains("extra: line", cut.FindAll("td[data-change=Inserted]").Select(td => td.TextContent));
        Assert.Equal(2, cut.FindAll("td[data-change=Unchanged]").Count(td => td.TextContent == "keep: yes"));
        Assert.Empty(cut.FindAll("[data-testid=diff-identical]"));
    }

    [Fact]
    public void DiffView_SaysWhenVersionsAreIdentical()
    {
        var cut = Render<DiffView>(p => p.Add(d => d.OldText, "a: 1\n").Add(d => d.NewText, "a: 1\n"));
        Assert.NotNull(cut.Find("[data-testid=diff-identical]"));
    }

    [Fact]
    public void ProblemsList_ListsDiagnosticsInLineOrder_AndAClickSelectsOne()
    {
        RunbookDiagnostic? selected = null;
        var diagnostics = new List<RunbookDiagnostic>
        {
            new(12, 5, DiagnosticSeverity.Error, "steps[1].retry.attempts", "attempts must be a whole number"),
            new(3, 1, DiagnosticSeverity.Warning, "tags", "tags are usually lower case"),
        };
        var cut = Render<ProblemsList>(p => p.Add(l => l.Diagnostics, diagnostics).Add(l => l.OnSelect, d => selected = d));

        var rows = cut.FindAll("[data-testid=problem]");
        Assert.Equal(new[] { "3", "12" }, rows.Select(r => r.GetAttribute("data-line") ?? "").ToArray());
        Assert.Contains("Ln 12, Col 5", rows[1].TextContent);
        Assert.Contains("steps[1].retry.attempts", rows[1].TextContent);
        Assert.Contains("1 error", cut.Find("[data-testid=problem-errors]").TextContent);

        rows[1].Click();
        Assert.Equal(12, selected!.Line);

        cut.FindAll("[data-testid=problem]")[0].KeyDown(new Microsoft.AspNetCore.Components.Web.KeyboardEventArgs { Key = "Enter" });
        Assert.Equal(3, selected!.Line);
    }

    [Fact]
    public void ProblemsList_SaysWhenThereAreNoProblems()
    {
        var cut = Render<ProblemsList>(p => p.Add(l => l.Diagnostics, []));
        Assert.Contains("No problems found", cut.Find("[data-testid=no-problems]").TextContent);
    }
}
