using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace RunbookPortal.E2E;

/// <summary>
/// Authoring in the browser: an Author types a runbook with a mistake into Monaco, sees the server's marker and the
/// problem, fixes it, saves with Ctrl+S and submits it for review; the same author may not approve it; a second
/// Author approves it; a second version made through the API is compared side by side with the first.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class RunbookAuthoringTests(PortalProcess portal, ITestOutputHelper output) : BrowserTest(portal, output)
{
    private const string RunbookName = "e2e-rotate-logs";

    /// <summary>The runbook once fixed; typed with <c>action: shel</c> first.</summary>
    private const string FixedYaml = """
        apiVersion: runbooks/v1
        name: e2e-rotate-logs
        title: Rotate logs
        description: Rotates application logs.
        type: maintenance
        tags: [logs]
        owner: team-ops
        steps:
          - id: rotate
            name: Rotate
            action: shell
            run: echo rotate

        """;

    /// <summary>Line of <c>action:</c> in the runbook above (1-based).</summary>
    private const int ActionLine = 11;

    [Fact]
    public async Task AuthorFixesAMistakeInMonaco_SavesSubmits_AndASecondAuthorApproves()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var author1 = $"author1-{suffix}@e2e.test";
        var author2 = $"author2-{suffix}@e2e.test";
        var password1 = "Author-one-" + suffix + "!";
        var password2 = "Author-two-" + suffix + "!";
        using var admin = Api(Portal.ApiToken);
        await CreateUserAsync(admin, author1, password1, "Author");
        await CreateUserAsync(admin, author2, password2, "Author");

        // ---- Author 1 writes the runbook in the editor, with a mistake.
        await SignInAsync(author1, password1);
        await Page.GotoAsync("/runbooks/new?type=maintenance");
        await WaitForInteractiveAsync("New runbook");
        var editor = Page.Locator("[data-testid=editor] .monaco-editor");
        await Expect(editor.Locator(".view-lines"), "Monaco is loaded and shows the template").ToBeVisibleAsync();
        await Page.WaitForFunctionAsync("() => window.monaco?.editor.getEditors().length === 1 && window.monaco.editor.getEditors()[0].getModel() !== null");

        await editor.Locator(".view-lines").ClickAsync();
        await Page.WaitForFunctionAsync("() => window.monaco.editor.getEditors()[0].hasTextFocus()"); // the click put the cursor into the editor
        var cut = FixedYaml.IndexOf("action: shell", StringComparison.Ordinal) + "action: ".Length;
        await Page.Keyboard.PressAsync("Control+a");
        await TypeLinesAsync(FixedYaml[..cut]); // replaces the template
        await Page.Keyboard.TypeAsync("shel"); // the mistake, key by key
        await Page.Keyboard.PressAsync("Escape"); // closes the completion list the typing opened
        await TypeLinesAsync(FixedYaml[(cut + "shell".Length)..]);
        Assert.Equal(FixedYaml.Replace("action: shell", "action: shel"), await EditorTextAsync());

        var problem = Page.Locator("[data-testid=problems] [data-testid=problem]").Filter(new() { HasText = "action" });
        await Expect(problem, "the problems list reports the unknown action").ToHaveCountAsync(1);
        await Expect(problem).ToHaveAttributeAsync("data-line", ActionLine.ToString());
        await Expect(problem).ToContainTextAsync("shell"); // "did you mean `shell`?"
        await Page.WaitForFunctionAsync(
            "line => window.monaco.editor.getModelMarkers({ owner: 'runbook-server' }).some(m => m.startLineNumber === line && m.severity === 8)",
            ActionLine);
        await Expect(editor.Locator(".squiggly-error").First, "the server's error is drawn as a squiggle").ToBeVisibleAsync();
        await Expect(Page.Locator("[data-testid=submit-review]"), "a runbook with errors cannot be submitted").ToBeDisabledAsync();
        await ScreenshotAsync("editor-error.png");

        // ---- A click on the problem jumps to its line; the fix is typed there.
        await problem.ClickAsync();
        await Page.WaitForFunctionAsync(
            "line => { const e = window.monaco.editor.getEditors()[0]; return e.hasTextFocus() && e.getPosition().lineNumber === line; }",
            ActionLine);
        await Page.Keyboard.PressAsync("End");
        await Page.Keyboard.TypeAsync("l");
        await Page.Keyboard.PressAsync("Escape");
        Assert.Equal(FixedYaml, await EditorTextAsync());
        await Expect(Page.Locator("[data-testid=no-problems]"), "the fixed runbook has no problems").ToContainTextAsync("No problems found.");
        await Page.WaitForFunctionAsync("() => window.monaco.editor.getModelMarkers({ owner: 'runbook-server' }).length === 0");
        await Expect(Page.Locator("[data-testid=unsaved]")).ToBeVisibleAsync();

        // ---- Ctrl+S in the editor saves the draft.
        await Page.Keyboard.PressAsync("Control+s");
        await Expect(Snackbar("Saved"), "Ctrl+S saves the draft").ToBeVisibleAsync();
        await Expect(Page).ToHaveURLAsync(new Regex($"/runbooks/{RunbookName}/edit$"));
        await Expect(Page.Locator("[data-testid=unsaved]")).ToHaveCountAsync(0);
        await ScreenshotAsync("editor-saved.png");

        // ---- Submit for review.
        await Page.Locator("[data-testid=submit-review]").ClickAsync();
        await Expect(Page).ToHaveURLAsync(new Regex($"/runbooks/{RunbookName}$"));
        await Expect(Page.Locator("h1")).ToHaveTextAsync("Rotate logs");
        await Expect(HeaderStatus(), "the runbook is in review").ToHaveAttributeAsync("data-status", "InReview");
        await Expect(HeaderStatus()).ToHaveTextAsync("In review");

        // ---- Its author is not offered the review of their own version (the API refuses it too: RunbookApiTests).
        await OpenTabAsync("Versions");
        await Expect(Page.Locator("[data-testid=versions-table]")).ToContainTextAsync("awaiting review");
        await Expect(Page.Locator("[data-testid=approve-v1]"), "no self-approval").ToHaveCountAsync(0);
        await Expect(Page.Locator("[data-testid=reject-v1]"), "no self-review").ToHaveCountAsync(0);
        await Expect(HeaderStatus()).ToHaveAttributeAsync("data-status", "InReview");
        await ScreenshotAsync("awaiting-review.png");

        // ---- A second author approves it (in a fresh browser session: the account menu's "Sign out" is covered by SignInTests).
        await NewBrowserSessionAsync();
        await SignInAsync(author2, password2);
        await Page.GotoAsync($"/runbooks/{RunbookName}");
        await WaitForInteractiveAsync("Rotate logs");
        await OpenTabAsync("Versions");
        await ApproveVersionAsync(1);
        await Expect(Snackbar("approved")).ToBeVisibleAsync();
        await Expect(HeaderStatus(), "the approval activates version 1").ToHaveAttributeAsync("data-status", "Active");
        await Expect(HeaderStatus()).ToHaveTextAsync("Active");
        await Expect(Page.Locator("[data-testid=versions-table]")).ToContainTextAsync(author2); // reviewed by
        await ScreenshotAsync("approved.png");

        // ---- Version 2 through the API, as author 1.
        var author1Token = await CreateTokenAsync(admin, author1);
        using (var api1 = Api(author1Token))
        {
            using var content = new StringContent(FixedYaml.Replace("run: echo rotate", "run: echo rotate --compress"), Encoding.UTF8, "application/yaml");
            using var put = await api1.PutAsync($"/api/runbooks/{RunbookName}", content);
            Assert.True(put.StatusCode == HttpStatusCode.OK, $"PUT /api/runbooks/{RunbookName} answered {(int)put.StatusCode}: {await put.Content.ReadAsStringAsync()}");
            using var saved = JsonDocument.Parse(await put.Content.ReadAsStringAsync());
            Assert.Equal(2, saved.RootElement.GetProperty("version").GetInt32());
        }

        // ---- Compare v1 with v2.
        await Page.GotoAsync($"/runbooks/{RunbookName}");
        await WaitForInteractiveAsync("Rotate logs");
        await OpenTabAsync("Compare");
        await Expect(Page.Locator("[data-testid=diff-from]"), "the comparison starts from the previous version").ToContainTextAsync("v1");
        await Expect(Page.Locator("[data-testid=diff-to]"), "and goes to the latest").ToContainTextAsync("v2");
        await Page.Locator("[data-testid=compare]").ClickAsync();
        var diff = Page.Locator("[data-testid=diff-view]");
        await Expect(diff).ToBeVisibleAsync();
        await Expect(diff.Locator("[data-testid=diff-identical]")).ToHaveCountAsync(0);
        var changed = diff.Locator("td[data-change=Modified], td[data-change=Inserted]").Filter(new() { HasText = "--compress" });
        await Expect(changed, "the changed run line is marked in the new version").ToHaveCountAsync(1);
        await Expect(diff.Locator("td[data-change=Modified], td[data-change=Deleted]").Filter(new() { HasText = "run: echo rotate" }).First)
            .ToBeVisibleAsync();
        await ScreenshotAsync("diff.png");

        // ---- The versions table lists both versions, newest first.
        await OpenTabAsync("Versions");
        var versions = Page.Locator("[data-testid=versions-table] tbody tr");
        await Expect(versions.Locator("td[data-label=Version]"), "the Version column names each version").ToHaveTextAsync(["v2", "v1"]);
        await Expect(versions.Locator("[data-status]")).ToHaveTextAsync(["Draft", "Active"]);
    }

    /// <summary>
    /// Types <paramref name="text"/> at the cursor (replacing the selection) a line at a time. Monaco indents a new
    /// line by itself (like the line above, and deeper after <c>key:</c>), so each line first selects that automatic
    /// indentation (Shift+Home) and types over it with its own.
    /// </summary>
    private async Task TypeLinesAsync(string text)
    {
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            if (i > 0)
            {
                await Page.Keyboard.InsertTextAsync("\n");
                await Page.Keyboard.PressAsync("Shift+Home");
            }
            if (lines[i].Length > 0)
                await Page.Keyboard.InsertTextAsync(lines[i]);
            else if (i > 0)
                await Page.Keyboard.PressAsync("Delete"); // an empty line: only drop the automatic indentation
        }
    }

    private async Task<string> EditorTextAsync() =>
        await Page.EvaluateAsync<string>("() => window.monaco.editor.getEditors()[0].getValue()");

    /// <summary>The status chip next to the runbook's title (the h1's row).</summary>
    private ILocator HeaderStatus() => Page.Locator("h1").Locator("xpath=..").Locator("[data-status]");

    private ILocator Snackbar(string text) => Page.Locator(".mud-snackbar").Filter(new() { HasText = text });

    private async Task OpenTabAsync(string name)
    {
        var tab = Page.GetByRole(AriaRole.Tab, new() { Name = name, Exact = true });
        await tab.ClickAsync();
        await Expect(tab).ToHaveAttributeAsync("aria-selected", "true");
    }

    private async Task ApproveVersionAsync(int version)
    {
        await Page.Locator($"[data-testid=approve-v{version}]").ClickAsync();
        var confirm = Page.Locator("[data-testid=lifecycle-confirm]");
        await Expect(Page.Locator(".mud-dialog"), "the approval asks for confirmation").ToContainTextAsync($"Version {version} becomes the active version");
        await confirm.ClickAsync();
        await Expect(confirm, "the dialog closes").ToHaveCountAsync(0);
    }
}
