// The page of `audionets serve`: pick or drop a file, upload it with progress, poll its job,
// show the result. Server text is only ever set as textContent (a file name is not HTML).
"use strict";

const POLL_MS = 250;
let limits = null;  // /api/info

function $(root, selector) { return root.querySelector(selector); }

function show(element, visible) { element.hidden = !visible; }

function megabytes(bytes) { return +(bytes / 2 ** 20).toFixed(2); }

async function loadInfo() {
  const response = await fetch("/api/info");
  limits = await response.json();
  const sep = limits.separator, clf = limits.classifier;
  $(document, "#models").textContent =
    `separator ${sep.source} (${sep.num_sources} sources, ${sep.sample_rate} Hz) · ` +
    `classifier ${clf.source} (${clf.labels} classes, ${clf.sample_rate} Hz)`;
  for (const span of document.querySelectorAll(".limits")) {
    span.textContent = `WAV, FLAC or OGG; up to ${megabytes(limits.max_upload_bytes)} MB ` +
      `and ${limits.max_seconds} s`;
  }
}

function selectTab(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const panel = tab.getAttribute("aria-controls");
    tab.setAttribute("aria-selected", String(panel === name));
    show(document.getElementById(panel), panel === name);
  }
}

// One panel (separate or classify): its own upload, job and result.
class Panel {
  constructor(section) {
    this.section = section;
    this.task = section.dataset.task;
    this.run = 0;  // a newer file makes the polling of an older one stop
    this.objectUrl = null;
    const input = $(section, "input[type=file]");
    input.addEventListener("change", () => {
      if (input.files.length) this.start(input.files[0]);
      input.value = "";  // the same file can be picked again
    });
    const drop = $(section, ".drop");
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      if (event.dataTransfer.files.length) this.start(event.dataTransfer.files[0]);
    });
  }

  reset() {
    this.section.dataset.state = "busy";
    show($(this.section, ".error"), false);
    show($(this.section, ".warnings"), false);
    show($(this.section, ".results"), false);
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
  }

  status(text, fraction) {
    show($(this.section, ".status"), true);
    $(this.section, ".status-text").textContent = text;
    const bar = $(this.section, "progress");
    if (fraction === null) bar.removeAttribute("value"); else bar.value = fraction;
  }

  fail(message) {
    show($(this.section, ".status"), false);
    const box = $(this.section, ".error");
    box.textContent = message;
    show(box, true);
    this.section.dataset.state = "error";
  }

  start(file) {
    const run = ++this.run;
    this.reset();
    if (limits && file.size > limits.max_upload_bytes) {  // the server refuses it too
      this.fail(`${file.name}: larger than this server's upload limit of ` +
        `${megabytes(limits.max_upload_bytes)} MB; cut or compress the file, or restart the ` +
        "server with a larger --max-upload-mb");
      return;
    }
    const form = new FormData();
    form.append("file", file);
    const request = new XMLHttpRequest();
    request.open("POST", `/api/${this.task}`);
    request.responseType = "json";
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) this.status("uploading…", event.loaded / event.total);
    };
    request.onload = () => {
      if (run !== this.run) return;
      const body = request.response || {};
      if (request.status === 202) this.poll(run, body.job, file);
      else this.fail(body.error || `the server answered HTTP ${request.status}`);
    };
    request.onerror = () => {
      if (run === this.run) this.fail(`${file.name}: the upload failed (the server is gone or closed the connection)`);
    };
    this.status("uploading…", 0);
    request.send(form);
  }

  async poll(run, jobId, file) {
    while (run === this.run) {
      let job;
      try {
        const response = await fetch(`/api/jobs/${encodeURIComponent(jobId)}`);
        job = await response.json();
        if (!response.ok) { this.fail(job.error || `HTTP ${response.status}`); return; }
      } catch (err) {
        this.fail("lost contact with the server; is it still running?");
        return;
      }
      if (run !== this.run) return;
      const verb = this.task === "separate" ? "separating" : "classifying";
      const unit = this.task === "separate" ? "chunk" : "window";
      if (job.state === "queued") this.status("waiting for the files before it…", null);
      else if (job.state === "running") {
        const { done, total } = job.progress;
        this.status(total > 1 ? `${verb}: ${unit} ${Math.min(done + 1, total)} of ${total}…`
                              : `${verb}…`, total ? done / total : null);
      } else if (job.state === "error") { this.fail(job.error); return; }
      else if (job.state === "done") { this.finish(job, file); return; }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  finish(job, file) {
    show($(this.section, ".status"), false);
    if (job.warnings.length) {
      const list = $(this.section, ".warnings");
      list.replaceChildren(...job.warnings.map((text) => {
        const item = document.createElement("li");
        item.textContent = text;
        return item;
      }));
      show(list, true);
    }
    const results = $(this.section, ".results");
    $(results, ".name").textContent = job.name;
    this.objectUrl = URL.createObjectURL(file);  // the picked file itself, never re-downloaded
    $(results, "audio").src = this.objectUrl;
    if (this.task === "separate") this.showSources(results, job.result);
    else this.showLabels(results, job.result);
    show(results, true);
    this.section.dataset.state = "done";
  }

  showSources(results, result) {
    $(results, ".mixture img").src = `/api/files/${result.mixture.spectrogram}`;
    const template = document.getElementById("source-template");
    const articles = result.sources.map((source) => {
      const article = template.content.firstElementChild.cloneNode(true);
      $(article, "h2").textContent = source.name[0].toUpperCase() + source.name.slice(1);
      $(article, "audio").src = `/api/files/${source.audio}`;
      $(article, ".download").href = `/api/files/${source.audio}?download=1`;
      $(article, "img").src = `/api/files/${source.spectrogram}`;
      $(article, "img").alt = `spectrogram of ${source.name}`;
      return article;
    });
    $(results, ".sources").replaceChildren(...articles);
  }

  showLabels(results, result) {
    $(results, ".labels").replaceChildren(...result.predictions.map(({ label, probability }) => {
      const item = document.createElement("li");
      item.textContent = `${label} (${(100 * probability).toFixed(1)} %)`;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${Math.max(1, Math.round(probability * 200))}px`;
      item.append(bar);
      return item;
    }));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => selectTab(tab.getAttribute("aria-controls")));
  }
  for (const section of document.querySelectorAll("[role=tabpanel]")) new Panel(section);
  loadInfo().catch(() => { $(document, "#models").textContent = "the server does not answer"; });
});
