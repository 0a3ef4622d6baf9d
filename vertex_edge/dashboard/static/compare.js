// vertex-edge experiments UI, comparison: overlaid learning curves and the "differences only" toggle.
"use strict";
(function () {
  const E = window.Edge;
  const charts = document.getElementById("charts");
  const raw = document.getElementById("compare-data");
  const toggle = document.getElementById("only-diff");
  const table = document.querySelector(".params-cmp");
  if (toggle && table) {
    const apply = () => table.classList.toggle("only-diff", toggle.checked);
    toggle.addEventListener("change", apply);
    apply();
  }
  document.querySelectorAll(".run-chip").forEach((chip) => {
    chip.style.setProperty("--series", E.COLORS[Number(chip.dataset.series) % E.COLORS.length]);
  });
  if (!charts || !raw) return;
  let data;
  try {
    data = JSON.parse(raw.textContent);
  } catch (e) {
    return;
  }
  const groups = [["Loss", "loss", ["loss", "val_loss"]], ["Accuracy", "accuracy", ["accuracy", "val_accuracy"]]];
  let drawn = 0;
  for (const [title, yLabel, names] of groups) {
    const lines = [];
    data.runs.forEach((id, i) => {
      const series = data.series[i] || {};
      names.forEach((name, j) => {
        if (series[name]) {
          lines.push({ label: "run " + id + " " + name, steps: series[name].steps, values: series[name].values,
            color: E.COLORS[i % E.COLORS.length], dash: j === 1 });
        }
      });
    });
    if (lines.length) {
      E.lineChart(charts, title, lines, yLabel);
      drawn += 1;
    }
  }
  if (!drawn) charts.append(Object.assign(document.createElement("p"), { className: "muted", textContent: "None of these runs logged per-epoch metrics." }));
})();
