// The recycle bin: row selection for batch restore and destroy, and the batch dialog.
(() => {
  function updateSelection() {
    const boxes = Array.from(document.querySelectorAll("[data-bin-row-select]"));
    const checked = boxes.filter((box) => box.checked);
    document.querySelectorAll("[data-bin-batch]").forEach((button) => {
      button.disabled = checked.length === 0;
    });
    const count = document.querySelector("[data-bin-selection-count]");
    if (count) count.textContent = checked.length ? (count.dataset.template || "").replace("%(count)s", String(checked.length)) : "";
    const pageBox = document.querySelector("[data-bin-select-page]");
    if (pageBox) {
      pageBox.checked = boxes.length > 0 && checked.length === boxes.length;
      pageBox.indeterminate = checked.length > 0 && checked.length < boxes.length;
    }
  }

  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-bin-select-page]")) {
      document.querySelectorAll("[data-bin-row-select]").forEach((box) => {
        box.checked = event.target.checked;
      });
    }
    if (event.target.matches("[data-bin-select-page], [data-bin-row-select]")) updateSelection();
  });

  // A polling refresh keeps the rows the user had ticked.
  let ticked = [];
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "bin-results") {
      ticked = Array.from(document.querySelectorAll("[data-bin-row-select]:checked")).map((box) => box.value);
    }
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target && target.id === "batch-dialog-content") {
      const dialog = document.getElementById("batch-dialog");
      if (dialog && window.bootstrap) window.bootstrap.Modal.getOrCreateInstance(dialog).show();
    }
  });

  document.addEventListener("htmx:afterSettle", () => {
    ticked.forEach((value) => {
      const box = document.querySelector(`[data-bin-row-select][value="${CSS.escape(value)}"]`);
      if (box) box.checked = true;
    });
    ticked = [];
    updateSelection();
  });

  document.addEventListener("DOMContentLoaded", updateSelection);
})();
