// vertex-edge web app: upload (file picker or drag-and-drop) or pick a sample, and show the
// server-rendered result in place. Without JavaScript the form posts and the page reloads.
"use strict";
(function () {
  const form = document.getElementById("predict-form");
  const input = document.getElementById("file");
  const drop = document.getElementById("drop");
  const result = document.getElementById("result");
  if (!form || !input || !drop || !result) return;

  const maxBytes = Number(form.dataset.maxBytes) || 0;
  const maxMb = form.dataset.maxMb || "";
  let objectUrl = null;
  let pending = null;
  const shown = result.querySelector("form.feedback");
  if (shown) shown.hidden = false;

  function showError(title, message) {
    const box = document.createElement("div");
    box.className = "alert";
    box.setAttribute("role", "alert");
    box.dataset.testid = "error";
    const body = document.createElement("div");
    const t = document.createElement("p");
    t.className = "alert-title";
    t.textContent = title;
    const m = document.createElement("p");
    m.className = "alert-message";
    m.textContent = message;
    body.append(t, m);
    box.append(body);
    const heading = result.querySelector("h2");
    const spinner = result.querySelector(".spinner");
    result.replaceChildren(...[heading, spinner, box].filter(Boolean));
  }

  function reveal() {
    // one column (phones): bring the answer into view
    const top = result.getBoundingClientRect().top;
    if (top > window.innerHeight * 0.6 || top < 0) {
      const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      result.scrollIntoView({ behavior: smooth ? "smooth" : "auto", block: "start" });
    }
  }

  async function send(data, preview) {
    if (pending) pending.abort();
    const controller = new AbortController();
    pending = controller;
    result.setAttribute("aria-busy", "true");
    reveal();
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: data,
        headers: { "X-Fragment": "1" },
        signal: controller.signal,
      });
      const html = await response.text();
      const type = response.headers.get("content-type") || "";
      if (!type.startsWith("text/html")) {
        showError("Something went wrong", "The web app sent an unexpected answer (HTTP " + response.status + "). Please try again.");
        return;
      }
      result.innerHTML = html; // rendered (and escaped) by the server's template
      const original = result.querySelector("[data-original]");
      if (original && preview) {
        original.src = preview;
        original.hidden = false;
        const placeholder = result.querySelector("[data-original-placeholder]");
        if (placeholder) placeholder.remove();
      }
      result.dataset.state = response.ok ? "done" : "error";
      const feedback = result.querySelector("form.feedback");
      if (feedback) feedback.hidden = false; // the "Was this right?" control needs this script
    } catch (err) {
      if (err && err.name === "AbortError") return;
      showError("The web app cannot be reached", "Check your connection and try again.");
      result.dataset.state = "error";
    } finally {
      if (pending === controller) {
        pending = null;
        result.setAttribute("aria-busy", "false");
      }
    }
  }

  function sendFile(file) {
    if (!file) return;
    if (maxBytes && file.size > maxBytes) {
      showError("The image is too large",
        "Uploads are limited to " + maxMb + " MB. This one is " + (file.size / 1048576).toFixed(1) + " MB.");
      result.dataset.state = "error";
      reveal();
      return;
    }
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(file);
    const data = new FormData();
    data.append("file", file, file.name || "upload");
    send(data, objectUrl);
  }

  async function sendFeedback(feedback, label) {
    const status = feedback.querySelector(".feedback-status");
    const buttons = feedback.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    status.classList.remove("error");
    status.textContent = "Sending…";
    try {
      const response = await fetch(feedback.action, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify({
          request_id: feedback.dataset.requestId,
          instance: 0,
          label: label,
          predicted: Number(feedback.dataset.predicted),
        }),
      });
      const body = await response.json().catch(function () { return {}; });
      if (response.ok) {
        status.textContent = "Thank you: recorded as " + body.label + ".";
        feedback.dataset.state = "done";
        return;
      }
      status.textContent = body.message || ("The answer was not recorded (HTTP " + response.status + ").");
    } catch (err) {
      status.textContent = "The answer was not recorded: the web app cannot be reached.";
    }
    status.classList.add("error");
    buttons.forEach(function (b) { b.disabled = false; });
  }

  // "Was this right?": yes sends the predicted label, the other button the one picked
  result.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-answer]");
    const feedback = button && button.closest("form.feedback");
    if (!feedback) return;
    event.preventDefault();
    const select = feedback.querySelector("select[name=label]");
    const label = button.dataset.answer === "yes" ? select.options[Number(feedback.dataset.predicted)].value : select.value;
    sendFeedback(feedback, label);
  });

  input.addEventListener("change", function () {
    sendFile(input.files && input.files[0]);
    input.value = ""; // choosing the same file again still triggers a prediction
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const submitter = event.submitter;
    if (submitter && submitter.name === "sample") {
      const data = new FormData();
      data.append("sample", submitter.value);
      send(data, null);
    } else if (input.files && input.files[0]) {
      sendFile(input.files[0]);
    } else {
      input.click();
    }
  });

  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (event) {
      event.preventDefault();
      drop.classList.add("over");
    });
  });
  ["dragleave", "dragend", "drop"].forEach(function (name) {
    drop.addEventListener(name, function () { drop.classList.remove("over"); });
  });
  // a file dropped anywhere on the page is classified (and the browser does not navigate to it)
  window.addEventListener("dragover", function (event) { event.preventDefault(); });
  window.addEventListener("drop", function (event) {
    event.preventDefault();
    drop.classList.remove("over");
    const files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) sendFile(files[0]);
  });
})();
