// Behaviour the server-rendered pages share; no inline scripts (the CSP forbids them).
document.addEventListener("change", (event) => {
  const field = event.target.closest("[data-autosubmit]");
  if (field && field.form) field.form.requestSubmit();
});

// Ask before an action that cannot be undone: consoleConfirm(text, okLabel) resolves to true or false,
// in the page's dialog (#confirm-dialog in base.html), or the browser's when the dialog is missing.
// One question at a time: a question asked while the last one's dialog is still going away waits for it
// to be gone. Bootstrap hides the dialog before its backdrop has faded, and only then says "hidden"; a
// question shown in between took that late "hidden" for its own answer, and its OK then did nothing.
let lastQuestion = Promise.resolve(false);
window.consoleConfirm = function consoleConfirm(text, okLabel) {
  const dialog = document.getElementById("confirm-dialog");
  if (!dialog || !window.bootstrap) return Promise.resolve(window.confirm(text));
  const ask = () => new Promise((resolve) => {
    dialog.querySelector("[data-confirm-text]").textContent = text;
    const ok = dialog.querySelector("[data-confirm-ok]");
    if (!ok.dataset.defaultLabel) ok.dataset.defaultLabel = ok.textContent;
    ok.textContent = okLabel || ok.dataset.defaultLabel;
    const modal = window.bootstrap.Modal.getOrCreateInstance(dialog);
    let answer = false;
    ok.onclick = () => {
      answer = true;
      modal.hide();
    };
    dialog.addEventListener("hidden.bs.modal", () => resolve(answer), { once: true });
    modal.show();
  });
  lastQuestion = lastQuestion.then(ask, ask);
  return lastQuestion;
};

// <form data-confirm="Question?" data-confirm-ok="Cancel upload">: submitted only once confirmed.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (!form || form.dataset.confirmed === "1") return;
  event.preventDefault();
  event.stopImmediatePropagation();
  window.consoleConfirm(form.dataset.confirm, form.dataset.confirmOk).then((yes) => {
    if (!yes) return;
    form.dataset.confirmed = "1";
    form.requestSubmit();
  });
}, true);

// A copy button: <button data-copy="text">; says "Copied" for a moment.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const text = button.dataset.copy;
  const done = () => {
    button.classList.add("copied");
    window.setTimeout(() => button.classList.remove("copied"), 1200);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => {});
  } else {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
      done();
    } finally {
      area.remove();
    }
  }
});

// Bootstrap styles for form widgets that Django renders bare (forms that set no classes themselves),
// on load and in every fragment htmx swaps in.
function styleBareWidgets(root) {
  root.querySelectorAll("form input:not([type=checkbox]):not([type=hidden]):not([type=radio]):not([type=file]), form select, form textarea").forEach((el) => {
    if (!el.classList.contains("form-control") && !el.classList.contains("form-select")) {
      el.classList.add(el.tagName === "SELECT" ? "form-select" : "form-control");
    }
  });
}
document.addEventListener("DOMContentLoaded", () => styleBareWidgets(document));
document.addEventListener("htmx:afterSwap", (event) => styleBareWidgets(event.detail.target || document));
