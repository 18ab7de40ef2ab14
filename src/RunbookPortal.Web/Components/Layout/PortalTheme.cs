using MudBlazor;

namespace RunbookPortal.Web.Components.Layout;

public static class PortalTheme
{
    public static readonly MudTheme Theme = new()
    {
        PaletteLight = new PaletteLight
        {
            Primary = "#2f5bd3",
            Secondary = "#6b7a90",
            AppbarBackground = "#1d2b4f",
            AppbarText = "#ffffff",
            Background = "#f5f7fb",
            DrawerBackground = "#ffffff",
            // Text and status colours at 4.5:1 or more against white and the page background (WCAG AA), filled or outlined.
            TextSecondary = "#55606e",
            Info = "#1565c0",
            Success = "#1b7a3a",
            Warning = "#a85400",
            Error = "#c62828",
        },
        PaletteDark = new PaletteDark
        {
            Primary = "#7aa2ff",
            Secondary = "#9aa8bd",
            AppbarBackground = "#111827",
            Background = "#0b1120",
            Surface = "#151e30",
            DrawerBackground = "#111827",
        },
        Typography = new Typography
        {
            Default = new DefaultTypography
            {
                FontFamily = ["Inter", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
            },
        },
        LayoutProperties = new LayoutProperties { DefaultBorderRadius = "6px" },
    };
}
