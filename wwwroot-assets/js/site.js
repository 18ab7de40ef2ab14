// Small browser helpers for RunbookPortal (called through Blazor JS interop).
window.rbp = {
  getTheme() {
    try { return localStorage.getItem("rbp-theme"); } catch { return null; }
  },
  setTheme(value) {
    try { localStorage.setItem("rbp-theme", value); } catch { /* private mode: keep it for this page only */ }
  },
  // Keeps a scrolling log at its newest line while the reader is at the bottom; scrolling up to read stops it.
  followTail(element) {
    if (!element) return;
    if (!element.dataset.follow) {
      element.dataset.follow = "1";
      element.addEventListener("scroll", () => {
        element.dataset.follow = element.scrollHeight - element.scrollTop - element.clientHeight < 40 ? "1" : "0";
      });
    }
    if (element.dataset.follow === "1") element.scrollTop = element.scrollHeight;
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

