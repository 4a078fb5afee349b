// The import wizard: shows the file or URL field by import method, suggests platforms and the versions
// of the chosen platform and architecture (the matrix from #version-matrix), forces UEFI for aarch64 and mips64el,
// and for a local file posts the form without the file, then sends the file (images/upload.js).
(function () {
  "use strict";

  const UEFI_ONLY = new Set(["aarch64", "mips64el"]);

  function matrix() {
    const node = document.getElementById("version-matrix");
    return node ? JSON.parse(node.textContent) : {};
  }

  function value(form, name) {
    const checked = form.querySelector(`[name=${name}]:checked`);
    if (checked) return checked.value;
    const field = form.querySelector(`[name=${name}]`);
    return field ? field.value : "";
  }

  function wire(form) {
    const versions = matrix();
    const platform = form.querySelector("[name=platform]");
    const osType = form.querySelector("[name=os_type]");
    const arch = form.querySelector("[name=architecture]");
    const boot = form.querySelector("[name=boot_mode]");
    const list = document.getElementById("os-version-options");
    const platforms = document.getElementById("platform-options");

    function refresh() {
      const method = value(form, "import_method") || "upload";
      form.querySelectorAll("[data-source]").forEach((el) => {
        el.classList.toggle("d-none", el.dataset.source !== method);
      });
      if (osType && platform) {
        // Suggestions only: the platforms of the chosen OS type first, then the others; the versions
        // of the platform typed and the architecture chosen. Any text is accepted.
        const byType = versions[osType.value] || {};
        const all = Object.assign({}, ...Object.values(versions));
        const names = [...Object.keys(byType), ...Object.keys(all).filter((p) => !(p in byType))];
        if (platforms) platforms.replaceChildren(...names.map((v) => Object.assign(document.createElement("option"), { value: v })));
        const choices = ((all[platform.value.trim()] || {})[arch ? arch.value : ""]) || [];
        if (list) list.replaceChildren(...choices.map((v) => Object.assign(document.createElement("option"), { value: v })));
      }
      if (arch && boot) {
        const uefiOnly = UEFI_ONLY.has(arch.value);
        Array.from(boot.options).forEach((option) => {
          option.disabled = uefiOnly && option.value !== "uefi";
        });
        if (uefiOnly) boot.value = "uefi";
        form.querySelectorAll("[data-uefi-only]").forEach((el) => el.classList.toggle("d-none", boot.value !== "uefi"));
      }
    }

    form.addEventListener("change", refresh);
    if (platform) platform.addEventListener("input", refresh);
    refresh();
  }

  async function submit(form, event) {
    if (value(form, "import_method") !== "upload") return; // a URL import is a plain form post
    const input = form.querySelector("#image-file");
    const file = input && input.files && input.files[0];
    event.preventDefault();
    const sizeField = form.querySelector("[name=file_size]");
    if (sizeField) sizeField.value = file ? String(file.size) : "";
    const nameField = form.querySelector("[name=file_name]");
    if (nameField) nameField.value = file ? file.name : "";
    const data = new FormData(form);
    const button = form.querySelector("[type=submit]");
    button.disabled = true;
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        body: data,
        headers: { "X-Requested-With": "fetch", Accept: "application/json" },
        credentials: "same-origin",
      });
    } catch (error) {
      button.disabled = false;
      window.alert(String(error));
      return;
    }
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.includes("application/json")) {
      // The fields again, with the errors next to them.
      form.innerHTML = await response.text();
      wire(form);
      const fileInput = form.querySelector("#image-file");
      if (file && fileInput && window.DataTransfer) {
        // Keep the chosen file: the user corrects a field, not the file.
        const transfer = new DataTransfer();
        transfer.items.add(file);
        fileInput.files = transfer.files;
      }
      const firstError = form.querySelector(".is-invalid, .alert-danger");
      if (firstError) firstError.scrollIntoView({ block: "center" });
      return;
    }
    const created = await response.json();
    if (!file) {
      window.location.assign(created.upload_page);
      return;
    }
    // A reload from here on lands on the upload page, which resumes the same upload.
    window.history.replaceState(null, "", created.upload_page);
    form.classList.add("d-none");
    window.imageUpload.start({
      file,
      endpoint: created.tus_endpoint,
      chunkSize: created.chunk_size,
      imageId: created.id,
      csrf: window.imageUpload.csrfToken(form),
      onDone() {
        // Long enough to read "Upload complete", then the list, where the row shows the checks.
        window.setTimeout(() => window.location.assign(created.list_url), 1500);
      },
      onCancelled() {
        window.location.assign(created.list_url);
      },
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("import-form");
    if (!form) return;
    wire(form);
    form.addEventListener("submit", (event) => submit(form, event));
  });
})();
