// The image list: rows in a transitional status poll their own endpoint (every 2.5 s, slowing to 30 s
// while nothing changes; swapped only when the server's row version changed; the checkbox state kept;
// a 404 removes the row), row selection for batch delete, and the batch delete dialog.
(() => {
  const MIN_DELAY = 2500;
  const MAX_DELAY = 30000;
  const pollers = new Map();

  function rowVersion(row) {
    return row ? row.dataset.rowVersion : undefined;
  }

  function poll(id) {
    const state = pollers.get(id);
    const row = document.getElementById(id);
    if (!state || !row || !row.dataset.pollUrl) {
      pollers.delete(id);
      return;
    }
    fetch(row.dataset.pollUrl, {
      credentials: "same-origin",
      headers: { "HX-Request": "true", "HX-Current-URL": window.location.href },
    })
      .then((response) => {
        if (response.status === 404) {
          const gone = document.getElementById(id);
          if (gone) gone.remove();
          pollers.delete(id);
          updateSelection();
          return null;
        }
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then((html) => {
        if (html === null) return;
        const current = document.getElementById(id);
        if (!current) {
          pollers.delete(id);
          return;
        }
        const holder = document.createElement("tbody");
        holder.innerHTML = html.trim();
        const fresh = holder.querySelector("tr");
        if (!fresh) throw new Error("no row");
        if (rowVersion(fresh) === rowVersion(current)) {
          state.delay = Math.min(Math.round(state.delay * 1.5), MAX_DELAY);
        } else {
          const box = current.querySelector("[data-row-select]");
          const freshBox = fresh.querySelector("[data-row-select]");
          if (box && freshBox) freshBox.checked = box.checked;
          current.replaceWith(fresh);
          if (window.htmx) window.htmx.process(fresh);
          state.delay = MIN_DELAY;
          updateSelection();
        }
        schedule(id, state);
      })
      .catch(() => {
        state.delay = Math.min(state.delay * 2, MAX_DELAY);
        schedule(id, state);
      });
  }

  function schedule(id, state) {
    const row = document.getElementById(id);
    if (!row || !row.dataset.pollUrl) {
      pollers.delete(id);
      return;
    }
    state.timer = window.setTimeout(() => poll(id), state.delay);
  }

  function startPolling(root) {
    (root || document).querySelectorAll("tr[data-poll-url]").forEach((row) => {
      if (!row.id || pollers.has(row.id)) return;
      const state = { delay: MIN_DELAY, timer: null };
      pollers.set(row.id, state);
      schedule(row.id, state);
    });
  }

  // --- selection and batch delete ---
  function allMatchingInput() {
    return document.querySelector("[data-select-all-matching]");
  }

  function updateSelection() {
    const boxes = Array.from(document.querySelectorAll("[data-row-select]"));
    const checked = boxes.filter((box) => box.checked);
    const allMatching = allMatchingInput();
    const matching = allMatching && !allMatching.disabled;
    const button = document.querySelector("[data-batch-delete]");
    if (button) button.disabled = !matching && checked.length === 0;
    const count = document.querySelector("[data-selection-count]");
    if (count) {
      const template = matching ? count.dataset.allTemplate : count.dataset.template;
      count.textContent = checked.length || matching ? (template || "").replace("%(count)s", String(checked.length)) : "";
    }
    const pageBox = document.querySelector("[data-select-page]");
    if (pageBox) {
      pageBox.checked = boxes.length > 0 && checked.length === boxes.length;
      pageBox.indeterminate = checked.length > 0 && checked.length < boxes.length;
    }
    const banner = document.querySelector("[data-select-all-banner]");
    if (banner) banner.classList.toggle("d-none", !(boxes.length > 0 && checked.length === boxes.length));
  }

  function setAllMatching(on) {
    const input = allMatchingInput();
    if (!input) return;
    input.disabled = !on;
    const banner = document.querySelector("[data-select-all-banner]");
    if (banner) {
      banner.querySelectorAll("[data-banner-page], [data-select-all-matching-button]").forEach((el) => el.classList.toggle("d-none", on));
      const all = banner.querySelector("[data-banner-all]");
      if (all) all.classList.toggle("d-none", !on);
    }
  }

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches("[data-select-page]")) {
      document.querySelectorAll("[data-row-select]").forEach((box) => {
        box.checked = target.checked;
      });
      if (!target.checked) setAllMatching(false);
      updateSelection();
    } else if (target.matches("[data-row-select]")) {
      if (!target.checked) setAllMatching(false);
      updateSelection();
    }
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-select-all-matching-button]")) {
      setAllMatching(true);
      updateSelection();
    }
  });

  // The column chooser: hide or show a column at once, and remember the choice for this user.
  document.addEventListener("change", (event) => {
    const toggle = event.target.closest("[data-column-toggle]");
    if (!toggle) return;
    const table = document.querySelector("[data-testid=image-table]");
    if (table) table.classList.toggle(`hide-${toggle.value}`, !toggle.checked);
    const form = toggle.form;
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin",
    });
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target && target.id === "batch-dialog-content") {
      const dialog = document.getElementById("batch-dialog");
      if (dialog && window.bootstrap) window.bootstrap.Modal.getOrCreateInstance(dialog).show();
    }
  });

  document.addEventListener("htmx:afterSettle", () => {
    startPolling(document);
    updateSelection();
  });

  document.addEventListener("DOMContentLoaded", () => {
    startPolling(document);
    updateSelection();
  });
})();
