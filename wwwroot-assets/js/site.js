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
  scrollToId(id) {
    document.getElementById(id)?.scrollIntoView({ block: "start", behavior: "smooth" });
  },
  // The execution page's log view (LogView.razor): tells .NET when the reader leaves the end or comes back to it.
  logView: {
    attach(element, dotnet) {
      if (!element || element.__rbpLog) return;
      const state = { atEnd: true, dotnet, lastTop: element.scrollTop };
      // Only the reader scrolling UP leaves the end: lines that arrive between a scroll and the next toEnd make
      // the end move away without the reader doing anything, and that must not stop following.
      state.onScroll = () => {
        const top = element.scrollTop;
        const movedUp = top < state.lastTop;
        state.lastTop = top;
        const atEnd = element.scrollHeight - top - element.clientHeight < 24;
        if (!atEnd && !movedUp) return;
        if (atEnd !== state.atEnd) {
          state.atEnd = atEnd;
          dotnet.invokeMethodAsync("OnFollowChanged", atEnd).catch(() => {});
        }
      };
      element.addEventListener("scroll", state.onScroll, { passive: true });
      element.__rbpLog = state;
    },
    detach(element) {
      if (element && element.__rbpLog) {
        element.removeEventListener("scroll", element.__rbpLog.onScroll);
        delete element.__rbpLog;
      }
    },
    toEnd(element) {
      if (!element) return;
      element.scrollTop = element.scrollHeight;
      if (element.__rbpLog) {
        element.__rbpLog.atEnd = true;
        element.__rbpLog.lastTop = element.scrollTop;
      }
    },
    // Rows are of one fixed height, so a line's place is its index times that height: centred in the view.
    reveal(element, index, rowHeight) {
      if (!element) return;
      const top = index * rowHeight - (element.clientHeight - rowHeight) / 2;
      if (element.__rbpLog) element.__rbpLog.atEnd = false; // .NET stopped following to show the match
      element.scrollTop = Math.max(0, top);
    },
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

