// vertex-edge experiments UI, one run: learning curves, and live updates while the run trains.
"use strict";
(function () {
  const E = window.Edge;
  const page = document.getElementById("run");
  const charts = document.getElementById("charts");
  const raw = document.getElementById("run-data");
  if (!page || !charts || !raw) return;
  const runId = page.dataset.runId;
  let plots = [];

  function lines(series, pairs) {
    return pairs.filter(([name]) => series[name]).map(([name, color, dash]) => ({
      label: name, steps: series[name].steps, values: series[name].values, color, dash,
    }));
  }

  function draw(series) {
    plots.forEach((p) => p && p.destroy());
    charts.replaceChildren();
    plots = [];
    const groups = [
      ["Loss", "loss", [["loss", E.COLORS[0], false], ["val_loss", E.COLORS[1], true]]],
      ["Accuracy", "accuracy", [["accuracy", E.COLORS[0], false], ["val_accuracy", E.COLORS[1], true]]],
    ];
    for (const [title, yLabel, pairs] of groups) {
      const ls = lines(series, pairs);
      if (ls.length) plots.push(E.lineChart(charts, title, ls, yLabel));
    }
    if (!plots.length) charts.append(Object.assign(document.createElement("p"), { className: "muted", textContent: "No per-epoch metrics were logged yet." }));
  }

  let data;
  try {
    data = JSON.parse(raw.textContent);
  } catch (e) {
    data = { series: {}, status: "CORRUPT" };
  }
  draw(data.series || {});
  if (data.status !== "RUNNING" && data.status !== "QUEUED") return;

  const set = (id, text) => {
    const el = document.getElementById(id);
    if (el) el.textContent = text;
  };
  async function refresh() {
    if (document.hidden) return;
    try {
      const run = await E.getJSON("/api/runs/" + encodeURIComponent(runId));
      if (run.status !== data.status) {
        window.location.reload(); // finished, failed or died: the whole page changes
        return;
      }
      draw(run.series || {});
      set("epoch", run.epoch || 0);
      set("epochs-done", run.epoch || "—");
      if (run.latest && E.isNum(run.latest.val_accuracy)) set("latest-val", (run.latest.val_accuracy * 100).toFixed(2) + " %");
      set("heartbeat", run.heartbeat ? new Date(run.heartbeat).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—");
      set("best-val", E.isNum(run.best_val_accuracy) ? (run.best_val_accuracy * 100).toFixed(2) + " %" : "—");
      const out = document.getElementById("output");
      if (out && typeof run.captured_out === "string" && out.textContent !== run.captured_out) {
        const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
        out.textContent = run.captured_out;
        if (atEnd) out.scrollTop = out.scrollHeight;
      }
      page.dataset.updated = String(Date.now());
    } catch (e) {
      page.dataset.error = e.message;
    }
  }
  window.setInterval(refresh, E.refreshMs);
})();
