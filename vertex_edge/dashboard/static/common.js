// vertex-edge experiments UI: helpers shared by the pages (formatting, fetching, line charts).
"use strict";
window.Edge = (function () {
  const root = document.body.dataset.root || "";
  const refreshMs = Number(document.body.dataset.refreshMs) || 4000;
  const COLORS = ["#2f5bd3", "#d9480f", "#2b8a3e", "#ae3ec9", "#e0a800", "#1098ad", "#c2255c", "#5c940d",
    "#364fc7", "#862e9c", "#e8590c", "#0b7285"];
  const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function esc(value) {
    return String(value).replace(/[&<>"']/g, (c) => ESC[c]);
  }
  function isNum(v) {
    return typeof v === "number" && Number.isFinite(v);
  }
  function num(v, digits) {
    return isNum(v) ? (Number.isInteger(v) ? String(v) : v.toFixed(digits === undefined ? 4 : digits)) : "—";
  }
  function param(v) {
    if (v === undefined) return "";
    if (v === null) return "null";
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function duration(s) {
    if (!isNum(s)) return "—";
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return h + "h " + String(m).padStart(2, "0") + "m";
    if (m) return m + "m " + String(sec).padStart(2, "0") + "s";
    return sec + "s";
  }
  function pad(n) {
    return String(n).padStart(2, "0");
  }
  function localTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return esc(iso);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  async function getJSON(url) {
    const response = await fetch(root + url, { headers: { accept: "application/json" }, cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.message ? body.message : "HTTP " + response.status;
      throw new Error(message);
    }
    return body;
  }

  // One uPlot line chart: x = epochs, one series per {label, values by step, color, dash}.
  // Returns {plot, destroy} (null when the chart library is missing).
  function lineChart(container, title, lines, yLabel) {
    const steps = Array.from(new Set(lines.flatMap((l) => l.steps))).sort((a, b) => a - b);
    const data = [steps];
    for (const l of lines) {
      const byStep = new Map(l.steps.map((s, i) => [s, l.values[i]]));
      data.push(steps.map((s) => (byStep.has(s) && isNum(byStep.get(s)) ? byStep.get(s) : null)));
    }
    const box = document.createElement("figure");
    box.className = "chart";
    box.dataset.chart = title;
    const h = document.createElement("h3");
    h.textContent = title;
    box.append(h);
    container.append(box);
    const width = () => Math.max(280, box.clientWidth);
    const opts = {
      width: width(),
      height: 260,
      scales: { x: { time: false } },
      axes: [
        { label: "epoch", incrs: [1, 2, 5, 10, 20, 50, 100], values: (u, v) => v.map((x) => String(x)) },
        { label: yLabel, size: 60 },
      ],
      series: [{ label: "epoch" }].concat(lines.map((l) => ({
        label: l.label,
        stroke: l.color,
        width: 2,
        dash: l.dash ? [6, 5] : undefined,
        spanGaps: true,
        points: { show: steps.length <= 40, size: 5 },
        value: (u, v) => (v == null ? "—" : v.toFixed(4)),
      }))),
      cursor: { sync: { key: "edge-epochs" } },
      legend: { live: true },
    };
    if (typeof window.uPlot !== "function") {
      box.append(Object.assign(document.createElement("p"), { className: "muted", textContent: "The chart library did not load." }));
      return null;
    }
    const plot = new window.uPlot(opts, data, box);
    const observer = window.ResizeObserver ? new ResizeObserver(() => plot.setSize({ width: width(), height: 260 })) : null;
    if (observer) observer.observe(box);
    return { plot, destroy: () => { if (observer) observer.disconnect(); plot.destroy(); } };
  }

  return { root, refreshMs, COLORS, esc, isNum, num, param, duration, localTime, getJSON, lineChart };
})();
