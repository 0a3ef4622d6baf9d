// vertex-edge experiments UI, the runs table: sort, filter (text, status, key<op>value), the
// "changed params only" toggle, select runs to compare, and live refresh while a run trains.
// The view's state lives in the URL (?q=&status=&sort=&dir=&all=1), so a filtered table can be shared.
"use strict";
(function () {
  const E = window.Edge;
  const table = document.getElementById("runs");
  if (!table) return;
  const thead = table.tHead, tbody = table.tBodies[0];
  const filterInput = document.getElementById("filter");
  const chips = document.getElementById("status-filter");
  const changedOnly = document.getElementById("changed-only");
  const compareButton = document.getElementById("compare");
  const live = document.getElementById("live");
  const summary = document.getElementById("summary");
  const notice = document.getElementById("notice");
  const more = document.getElementById("more");
  const PAGE = 100; // rows in the DOM at first (as MLflow): laying out a table costs per cell; sort and filter see every run

  const url = new URL(window.location.href);
  const state = {
    data: null,
    text: url.searchParams.get("q") || "",
    status: url.searchParams.get("status") || "all",
    sortKey: url.searchParams.get("sort") || "id",
    sortDir: url.searchParams.get("dir") === "asc" ? 1 : -1,
    changedOnly: url.searchParams.get("all") !== "1",
    selected: new Set(),
    limit: PAGE,
  };
  filterInput.value = state.text;
  changedOnly.checked = state.changedOnly;

  const idValue = (r) => (r._id === undefined ? (r._id = /^\d+$/.test(r.id) ? Number(r.id) : r.id) : r._id);
  // Columns: who and when, the params (between), the results, then where it ran (scrolled to).
  const HEAD = [
    { key: "id", label: "Run", cls: "first", get: idValue },
    { key: "status", label: "Status" },
    { key: "start", label: "Started" },
    { key: "duration_s", label: "Duration", num: true },
    { key: "dvc_experiment", label: "DVC experiment" },
  ];
  const TAIL = [
    { key: "test_accuracy", label: "Test acc", num: true, cls: "metric" },
    { key: "test_loss", label: "Test loss", num: true, cls: "metric" },
    { key: "best_val_accuracy", label: "Val acc (best)", num: true, cls: "metric" },
    { key: "gate_passed", label: "Gate", cls: "metric" },
    { key: "registry", label: "Registry", cls: "metric", get: (r) => (r.registry.length ? Number(r.registry[r.registry.length - 1].version) : null) },
    { key: "commit", label: "Commit" },
    { key: "data_version", label: "Data" },
    { key: "host", label: "Host" },
  ];

  function value(r, col) {
    if (col.get) return col.get(r);
    if (col.param !== undefined) return r.params[col.param];
    return r[col.key];
  }

  // --- filtering: bare words match anywhere; key<op>value compares a param or a column
  const TERM = /^([A-Za-z_][\w.]*)(<=|>=|!=|=|<|>|~)(.*)$/;
  function field(r, key) {
    if (key in r.params) return r.params[key];
    if (key in r && key !== "params") return r[key];
    const suffix = Object.keys(r.params).filter((k) => k.endsWith("." + key));
    return suffix.length === 1 ? r.params[suffix[0]] : undefined;
  }
  function test(actual, op, wanted) {
    if (actual === undefined) return false;
    if (actual === null) return (op === "=" && wanted === "null") || (op === "!=" && wanted !== "null");
    const a = actual === null ? "null" : typeof actual === "object" ? JSON.stringify(actual) : actual;
    const n = Number(wanted);
    if (typeof a === "number" && wanted !== "" && !Number.isNaN(n)) {
      return { "=": a === n, "!=": a !== n, "<": a < n, ">": a > n, "<=": a <= n, ">=": a >= n, "~": String(a).includes(wanted) }[op];
    }
    const s = String(a).toLowerCase(), w = wanted.toLowerCase();
    return { "=": s === w, "!=": s !== w, "<": s < w, ">": s > w, "<=": s <= w, ">=": s >= w, "~": s.includes(w) }[op];
  }
  function haystack(r) {
    if (r._hay === undefined) {
      const parts = [r.id, r.status, r.host, r.commit, r.data_version, r.dvc_experiment, r.backend, r.start,
        ...Object.entries(r.params).map(([k, v]) => k + "=" + E.param(v)), ...r.problems];
      r._hay = parts.filter((p) => p != null).join(" ").toLowerCase();
    }
    return r._hay;
  }
  function matches(r, terms) {
    if (state.status !== "all" && r.status !== state.status) return false;
    for (const term of terms) {
      const m = TERM.exec(term);
      if (m && !(m[1] in r.params) && field(r, m[1]) === undefined && m[2] === "=") {
        if (!haystack(r).includes(term.toLowerCase())) return false; // "k=v" text of a param key it lacks
      } else if (m) {
        if (!test(field(r, m[1]), m[2], m[3])) return false;
      } else if (!haystack(r).includes(term.toLowerCase())) {
        return false;
      }
    }
    return true;
  }

  function compare(col) {
    return (a, b) => {
      const x = value(a, col), y = value(b, col);
      const xn = x === null || x === undefined, yn = y === null || y === undefined;
      if (xn || yn) return xn && yn ? 0 : xn ? 1 : -1; // blanks last, either way
      if (typeof x === "number" && typeof y === "number") return (x - y) * state.sortDir;
      return String(E.param(x)).localeCompare(String(E.param(y)), undefined, { numeric: true }) * state.sortDir;
    };
  }

  // --- cells
  function statusCell(r) {
    let extra = "";
    if (r.status === "RUNNING" && r.epoch) extra = " · " + r.epoch + (r.epochs ? "/" + r.epochs : "");
    const title = r.status === "DEAD" ? ' title="RUNNING in Sacred, but no heartbeat since ' + E.esc(r.heartbeat || "its start") + '"' : "";
    const warn = r.problems.length ? '<span class="warn-mark" title="' + E.esc(r.problems.join("\n")) + '">!</span>' : "";
    return '<span class="status status-' + r.status.toLowerCase() + '"' + title + ">" + r.status.toLowerCase() + E.esc(extra) + "</span>" + warn;
  }
  function cell(r, col) {
    const v = value(r, col);
    switch (col.key) {
      case "id": {
        const checked = state.selected.has(r.id) ? " checked" : "";
        return '<input type="checkbox" data-id="' + E.esc(r.id) + '" aria-label="select run ' + E.esc(r.id) + '"' + checked + '><a href="' + E.root + "/runs/" + encodeURIComponent(r.id) + '">' + E.esc(r.id) + "</a>";
      }
      case "status": return statusCell(r);
      case "start": return '<span title="' + E.esc(r.start || "") + '">' + E.localTime(r.start) + "</span>";
      case "duration_s": return E.duration(v);
      case "commit": return v ? '<code title="' + E.esc(v) + '">' + E.esc(v.slice(0, 8)) + "</code>" + (r.dirty ? ' <span class="dirty" title="uncommitted changes">+dirty</span>' : "") : "—";
      case "data_version": return v ? '<code title="' + E.esc(v) + '">' + E.esc(v.slice(0, 8)) + "</code>" : "—";
      case "gate_passed": return v === true ? '<span class="gate pass">passed</span>' : v === false ? '<span class="gate fail">failed</span>' : "—";
      case "registry": return r.registry.length ? r.registry.map((l) => '<span class="reg' + (l.traffic ? " serving" : "") + '">v' + E.esc(l.version) + (l.traffic ? " · " + l.traffic + " %" : "") + "</span>").join(" ") : "—";
      default:
        if (col.param !== undefined) return v === undefined ? '<span class="muted">—</span>' : "<code>" + E.esc(E.param(v)) + "</code>";
        if (col.num) return E.num(v);
        return v === null || v === undefined || v === "" ? "—" : E.esc(v);
    }
  }

  // --- rendering
  function paramKeys(rows) {
    const keys = state.data.param_keys;
    if (!state.changedOnly) return keys;
    if (rows.length < 2) return state.data.changed_keys.filter((k) => rows.length === 0 || k in rows[0].params);
    const same = (a, b) => a === b || (typeof a === "object" && typeof b === "object" && JSON.stringify(a) === JSON.stringify(b));
    return keys.filter((k) => {
      const first = rows[0].params[k];
      return rows.some((r) => !same(r.params[k], first));
    });
  }

  function render() {
    const started = performance.now();
    const data = state.data;
    state.text = filterInput.value; // what is typed counts, even before the typing pause
    const terms = state.text.trim().split(/\s+/).filter(Boolean);
    const rows = data.runs.filter((r) => matches(r, terms));
    const keys = paramKeys(rows);
    const cols = HEAD.concat(keys.map((k) => ({ key: "p:" + k, param: k, label: k, cls: "param" })), TAIL);
    const sortCol = cols.find((c) => c.key === state.sortKey) || cols[0];
    rows.sort(compare(sortCol));

    thead.innerHTML = "<tr>" + cols.map((c) => {
      const sorted = c.key === sortCol.key ? (state.sortDir > 0 ? "ascending" : "descending") : "none";
      const label = c.param !== undefined ? '<span class="group-label">param</span>' + E.esc(c.label) : E.esc(c.label);
      return '<th scope="col" data-key="' + E.esc(c.key) + '" class="' + (c.cls || "") + (c.num ? " num" : "") + '" aria-sort="' + sorted + '" tabindex="0">' + label + "</th>";
    }).join("") + "</tr>";
    const html = rows.slice(0, state.limit).map((r) => '<tr data-id="' + E.esc(r.id) + '" data-status="' + r.status + '"' + (state.selected.has(r.id) ? ' class="selected"' : "") + ">" +
      cols.map((c) => '<td class="' + (c.cls || "") + (c.num ? " num" : "") + '">' + cell(r, c) + "</td>").join("") + "</tr>");
    tbody.innerHTML = html.length ? html.join("") : '<tr><td class="empty-row" colspan="' + cols.length + '">' +
      (data.runs.length ? "No run matches the filter." : "No runs yet: run 'dvc repro' (or 'dvc exp run') to train one.") + "</td></tr>";
    table.setAttribute("aria-busy", "false");

    renderMore(rows.length);
    renderChips();
    const hidden = state.data.param_keys.length - keys.length;
    summary.textContent = data.runs.length + " runs in the " + data.store + (rows.length !== data.runs.length ? " · " + rows.length + " shown" : "") +
      (state.changedOnly && hidden ? " · " + hidden + " params equal in every shown run are hidden" : "");
    notice.hidden = !data.registry_note;
    notice.textContent = data.registry_note || "";
    updateCompare();
    void table.offsetHeight; // lay the table out now, so the time below includes it
    table.dataset.renderMs = (performance.now() - started).toFixed(1);
    if (!performance.getEntriesByName("runs-table-rendered").length) performance.mark("runs-table-rendered");
    table.dataset.rows = String(rows.length);
    writeUrl();
  }

  function renderMore(total) {
    const hidden = total - Math.min(total, state.limit);
    more.hidden = hidden <= 0;
    if (hidden > 0) {
      more.innerHTML = "Showing " + state.limit + " of " + total + " runs (sorted and filtered over all of them) · " +
        '<button type="button" class="link" data-more="' + PAGE + '">show ' + Math.min(PAGE, hidden) + " more</button> · " +
        '<button type="button" class="link" data-more="all">show all</button>';
    }
  }

  function renderChips() {
    const counts = {};
    for (const r of state.data.runs) counts[r.status] = (counts[r.status] || 0) + 1;
    const order = ["RUNNING", "QUEUED", "COMPLETED", "FAILED", "INTERRUPTED", "TIMED_OUT", "DEAD", "CORRUPT"];
    const items = [["all", "all", state.data.runs.length]].concat(order.filter((s) => counts[s]).map((s) => [s, s.toLowerCase(), counts[s]]));
    chips.innerHTML = items.map(([key, label, n]) => '<button type="button" class="chip" data-status="' + key + '" aria-pressed="' + (state.status === key) + '">' +
      E.esc(label) + '<span class="count">' + n + "</span></button>").join("");
  }

  function updateCompare() {
    const n = state.selected.size;
    compareButton.disabled = n < 2;
    compareButton.textContent = n ? "Compare " + n + " runs" : "Compare (select 2+)";
  }

  function writeUrl() {
    const u = new URL(window.location.href);
    const set = (k, v, dflt) => (v === dflt ? u.searchParams.delete(k) : u.searchParams.set(k, v));
    set("q", state.text, "");
    set("status", state.status, "all");
    set("sort", state.sortKey, "id");
    set("dir", state.sortDir > 0 ? "asc" : "desc", "desc");
    set("all", state.changedOnly ? "0" : "1", "0");
    window.history.replaceState(null, "", u);
  }

  // --- events
  thead.addEventListener("click", (ev) => {
    const th = ev.target.closest("th");
    if (!th) return;
    if (state.sortKey === th.dataset.key) state.sortDir = -state.sortDir;
    else {
      state.sortKey = th.dataset.key;
      state.sortDir = th.classList.contains("num") || th.classList.contains("metric") ? -1 : 1;
    }
    render();
  });
  thead.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      ev.target.click();
    }
  });
  tbody.addEventListener("change", (ev) => {
    const box = ev.target.closest("input[type=checkbox]");
    if (!box) return;
    if (box.checked) state.selected.add(box.dataset.id);
    else state.selected.delete(box.dataset.id);
    box.closest("tr").classList.toggle("selected", box.checked);
    updateCompare();
  });
  chips.addEventListener("click", (ev) => {
    const chip = ev.target.closest(".chip");
    if (!chip) return;
    state.status = chip.dataset.status;
    render();
  });
  let typing = null;
  filterInput.addEventListener("input", () => {
    window.clearTimeout(typing);
    typing = window.setTimeout(() => {
      state.text = filterInput.value;
      render();
    }, 120);
  });
  more.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-more]");
    if (!button) return;
    state.limit = button.dataset.more === "all" ? Infinity : state.limit + PAGE;
    render();
  });
  changedOnly.addEventListener("change", () => {
    state.changedOnly = changedOnly.checked;
    render();
  });
  compareButton.addEventListener("click", () => {
    const ids = Array.from(state.selected).sort((a, b) => Number(a) - Number(b) || a.localeCompare(b));
    window.location.href = E.root + "/compare?ids=" + ids.map(encodeURIComponent).join(",");
  });

  // --- loading and live refresh: every refreshMs (4 s) while a run trains, else every 6x that
  let timer = null;
  function show(data) {
    state.data = data;
    const known = new Set(data.runs.map((r) => r.id));
    for (const id of Array.from(state.selected)) if (!known.has(id)) state.selected.delete(id);
    render();
    const active = data.runs.some((r) => r.status === "RUNNING" || r.status === "QUEUED");
    live.className = "live" + (active ? " on" : "");
    live.textContent = (active ? "live · " : "") + "updated " + new Date().toLocaleTimeString();
    table.dataset.loaded = String(Date.now());
    timer = window.setTimeout(load, active ? E.refreshMs : 6 * E.refreshMs);
  }
  async function load() {
    window.clearTimeout(timer);
    const t0 = performance.now();
    try {
      const data = await E.getJSON("/api/runs");
      table.dataset.fetchMs = (performance.now() - t0).toFixed(1);
      show(data);
    } catch (e) {
      live.className = "live";
      live.textContent = "could not refresh: " + e.message;
      if (!state.data) tbody.innerHTML = '<tr><td class="empty-row" role="alert">Could not load the runs: ' + E.esc(e.message) + "</td></tr>";
      timer = window.setTimeout(load, 2 * E.refreshMs);
    }
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.data) load();
  });
  let initial = null;
  performance.mark("runs-script");
  try {
    initial = JSON.parse(document.getElementById("runs-data").textContent);
    performance.mark("runs-data-parsed");
  } catch (e) {
    initial = null;
  }
  if (initial && Array.isArray(initial.runs)) show(initial);
  else load();
})();
