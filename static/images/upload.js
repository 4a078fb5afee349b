// Sends an image's file with tus-js-client: a progress bar with bytes, speed and time left, resume after
// a dropped connection at the server's offset, and Cancel (tus termination). No inline scripts: the CSP
// forbids them; translated texts come from the page's #upload-messages JSON.
(function () {
  "use strict";

  function messages() {
    const node = document.getElementById("upload-messages");
    return node ? JSON.parse(node.textContent) : {};
  }

  function format(template, values) {
    return (template || "").replace(/%\((\w+)\)s/g, (_m, key) => (key in values ? values[key] : ""));
  }

  function size(bytes) {
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${value} ${units[0]}` : `${value.toFixed(1)} ${units[unit]}`;
  }

  function duration(seconds) {
    if (!isFinite(seconds)) return "";
    if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function csrfToken(scope) {
    const input = (scope || document).querySelector("input[name=csrfmiddlewaretoken]") ||
      document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function errorText(error) {
    const response = error && error.originalResponse;
    if (response) {
      try {
        const body = JSON.parse(response.getBody() || "{}");
        if (body.detail) return body.detail;
      } catch (_e) {
        /* not JSON */
      }
    }
    return (error && error.message) || String(error);
  }

  // Statuses after which trying again cannot help: the file was refused, the import ended, no room.
  const FINAL = new Set([400, 403, 404, 410, 412, 413, 415, 422]);

  function showNext(panel, imageId) {
    const next = panel.querySelector("[data-upload-next]");
    if (!next || !imageId) return;
    const placeholder = "00000000-0000-4000-8000-000000000000";
    next.querySelector("[data-next-import-again]").href = next.dataset.importAgainUrl + encodeURIComponent(imageId);
    next.querySelector("[data-next-delete]").href = next.dataset.deleteUrl.replace(placeholder, imageId);
    next.querySelector("[data-next-detail]").href = next.dataset.detailUrl.replace(placeholder, imageId);
    next.classList.remove("d-none");
  }

  function startUpload(options) {
    const text = messages();
    const panel = document.getElementById("upload-panel");
    const bar = panel.querySelector("[data-upload-bar]");
    const barBox = panel.querySelector("[role=progressbar]");
    const bytes = panel.querySelector("[data-upload-bytes]");
    const speed = panel.querySelector("[data-upload-speed]");
    const left = panel.querySelector("[data-upload-left]");
    const status = panel.querySelector("[data-upload-status]");
    const cancel = panel.querySelector("[data-upload-cancel]");
    const file = options.file;
    panel.classList.remove("d-none");
    panel.querySelector("[data-upload-name]").textContent = file.name;
    status.textContent = "";
    status.className = "small mt-2";
    const samples = [];

    function show(sent, total) {
      const percent = total ? Math.floor((sent * 100) / total) : 0;
      bar.style.width = `${percent}%`;
      bar.textContent = `${percent}%`;
      barBox.setAttribute("aria-valuenow", String(percent));
      bytes.textContent = format(text.of, { done: size(sent), total: size(total) });
      const now = performance.now();
      samples.push([now, sent]);
      while (samples.length > 2 && now - samples[0][0] > 5000) samples.shift();
      const [t0, b0] = samples[0];
      const rate = now > t0 ? ((sent - b0) * 1000) / (now - t0) : 0;
      if (rate > 0) {
        speed.textContent = format(text.speed, { speed: size(Math.round(rate)) });
        left.textContent = sent < total ? format(text.left, { time: duration((total - sent) / rate) }) : "";
      }
    }

    const upload = new tus.Upload(file, {
      endpoint: options.endpoint,
      uploadUrl: options.uploadUrl || null,
      // PATCHes of this size fit under a proxy's body limit; each continues where the last one ended,
      // in whichever web process it reaches (IMPORT_UPLOAD_CHUNK_MB).
      chunkSize: options.chunkSize > 0 ? options.chunkSize : Infinity,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000],
      metadata: { image_id: options.imageId, filename: file.name },
      headers: { "X-CSRFToken": options.csrf },
      storeFingerprintForResuming: false,
      onProgress: show,
      onShouldRetry(error) {
        const response = error && error.originalResponse;
        const code = response ? response.getStatus() : 0;
        if (FINAL.has(code)) return false;
        status.textContent = text.retrying;
        return true;
      },
      onSuccess() {
        show(file.size, file.size);
        bar.classList.remove("progress-bar-animated", "progress-bar-striped");
        bar.classList.add("bg-success");
        cancel.disabled = true;
        status.textContent = text.done;
        status.className = "small mt-2 text-success";
        if (options.onDone) options.onDone();
      },
      onError(error) {
        // No dead end: say what failed, and offer to import again (the wizard filled in) or delete.
        bar.classList.remove("progress-bar-animated", "progress-bar-striped");
        bar.classList.add("bg-danger");
        cancel.classList.add("d-none");
        showNext(panel, options.imageId);
        status.textContent = format(text.failed, { error: errorText(error) });
        status.className = "small mt-2 text-danger";
        if (options.onError) options.onError(error);
      },
    });

    cancel.disabled = false;
    cancel.classList.remove("d-none");
    cancel.onclick = async () => {
      const ask = window.consoleConfirm || ((question) => Promise.resolve(window.confirm(question)));
      if (!(await ask(text.confirmCancel, cancel.textContent))) return;
      cancel.disabled = true;
      // abort(true) terminates the upload on the server (DELETE): the import is cancelled there.
      upload.abort(true).then(
        () => {
          status.textContent = text.cancelled;
          status.className = "small mt-2 text-danger";
          if (options.onCancelled) options.onCancelled();
        },
        (error) => {
          status.textContent = format(text.failed, { error: errorText(error) });
        },
      );
    };
    // Resuming never relies on the browser's memory of earlier uploads (which could belong to another
    // image): the upload page passes the server's URL of this image's upload, and tus asks it the offset.
    upload.start();
    return upload;
  }

  window.imageUpload = { start: startUpload, csrfToken, messages, format };

  // The upload page: continue (or start) the upload of an image waiting for its file.
  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("upload-form");
    if (!form) return;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = form.querySelector("#image-file");
      const error = form.querySelector("[data-upload-error]");
      const text = messages();
      const file = input.files && input.files[0];
      error.textContent = "";
      if (!file) {
        error.textContent = text.choose;
        return;
      }
      const expected = form.dataset.expectedSize;
      if (expected && Number(expected) !== file.size) {
        error.textContent = format(text.wrongFile, { size: file.size, expected });
        return;
      }
      form.querySelector("button[type=submit]").disabled = true;
      startUpload({
        file,
        endpoint: form.dataset.tusEndpoint,
        uploadUrl: form.dataset.uploadUrl,
        chunkSize: Number(form.dataset.chunkSize || 0),
        imageId: form.dataset.imageId,
        csrf: csrfToken(form),
        onDone() {
          window.location.assign(form.dataset.listUrl);
        },
      });
    });
  });
})();
