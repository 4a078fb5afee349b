// Behaviour the server-rendered pages share; no inline scripts (the CSP forbids them).
document.addEventListener("change", (event) => {
  const field = event.target.closest("[data-autosubmit]");
  if (field && field.form) field.form.requestSubmit();
});
document.addEventListener("DOMContentLoaded", () => {
  // Bootstrap styles for form widgets that Django renders bare.
  document.querySelectorAll("form input:not([type=checkbox]):not([type=hidden]):not([type=radio]), form select, form textarea").forEach((el) => {
    if (!el.classList.contains("form-control") && !el.classList.contains("form-select")) {
      el.classList.add(el.tagName === "SELECT" ? "form-select" : "form-control");
    }
  });
});
