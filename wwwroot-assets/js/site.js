// Small browser helpers for RunbookPortal (called through Blazor JS interop).
window.rbp = {
  getTheme() {
    try { return localStorage.getItem("rbp-theme"); } catch { return null; }
  },
  setTheme(value) {
    try { localStorage.setItem("rbp-theme", value); } catch { /* private mode: keep it for this page only */ }
  },
  async copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  },
};

