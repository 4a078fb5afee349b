// Download and export dialogs: a link or button with hx-target="#download-dialog-content" loads the
// dialog's content, which is then shown in the page's modal; "Copy" puts the new address on the clipboard.
(() => {
  "use strict";

  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target && target.id === "download-dialog-content") {
      const dialog = document.getElementById("download-dialog");
      if (dialog && window.bootstrap) window.bootstrap.Modal.getOrCreateInstance(dialog).show();
    }
  });

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy-target]");
    if (!button) return;
    const input = document.querySelector(button.dataset.copyTarget);
    if (!input) return;
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (error) {
      document.execCommand("copy");
    }
    button.textContent = button.dataset.copiedText || button.textContent;
  });
})();
