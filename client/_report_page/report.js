"use strict";
// Draws the editjudge report from the JSON embedded in the page. Every piece of text from the
// data goes in as a text node (never as HTML), so a judge's reasoning cannot become markup.
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const PAGE = 100;
  const CMP = data.compare;
  const RUNS = CMP ? [0, 1] : [0];
  const LABELS = data.runs.map((r) => r.label);
  const items = data.items.map((item, index) => Object.assign({ index: index }, item));
  const hasImages = items.some((i) => i.src != null || i.edit != null || i.edit_b != null);
  const hasInstructions = items.some((i) => i.instruction != null);
  const state = { key: "index", dir: 1, shown: PAGE, filter: null };
  const $ = (id) => document.getElementById(id);

  // ---- small helpers ----
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child == null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const svg = (tag, attrs) => {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    return node;
  };
  function fmt(v, digits) {
    if (v == null) return "\u2013";
    const d = digits == null ? 2 : digits;
    return String(Math.round(v * 10 ** d) / 10 ** d);
  }
  function signed(v) {
    return v == null ? "\u2013" : (v > 0 ? "+" : v < 0 ? "\u2212" : "\u00b1") + fmt(Math.abs(v));
  }
  const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  function median(xs) {
    if (!xs.length) return null;
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  }

  // ---- what an item says ----
  const result = (item, run) => item.runs[run] || null;
  const status = (item, run) => (result(item, run) ? result(item, run).status : "missing");
  function value(item, run, metric) {
    const r = result(item, run);
    if (!r) return null;
    const v = metric === "score" ? r.score : r.scores[metric];
    return v == null ? null : v;
  }
  function delta(item, metric) {
    const a = value(item, 0, metric);
    const b = value(item, 1, metric);
    return a == null || b == null ? null : b - a;
  }
  function sortValue(item, key) {
    const [kind, a] = key.split(":");
    if (kind === "index") return item.index;
    if (kind === "id") return item.id;
    if (kind === "status") {
      const r = result(item, +a);
      return r && r.error ? "error:" + r.error.code : status(item, +a);
    }
    if (kind === "m") return value(item, +a, key.slice(kind.length + a.length + 2));
    if (kind === "d") return delta(item, key.slice(2));
    if (kind === "meta") return item.meta[key.slice(5)] == null ? null : item.meta[key.slice(5)];
    return null;
  }
  function compare(x, y) {
    if (typeof x === "number" && typeof y === "number") return x - y;
    return String(x).localeCompare(String(y), undefined, { numeric: true });
  }
  function sorted(list) {
    const { key, dir } = state;
    return [...list].sort((p, q) => {
      const x = sortValue(p, key);
      const y = sortValue(q, key);
      if (x == null || y == null) return (x == null) - (y == null) || p.index - q.index;
      return dir * compare(x, y) || p.index - q.index;
    });
  }
  function haystack(item) {
    if (item.hay == null) {
      const parts = [item.id, item.instruction || ""];
      for (const r of item.runs) {
        if (r) parts.push(r.reasoning || "", r.error ? r.error.code + " " + r.error.message : "");
      }
      parts.push(...Object.values(item.meta).map((v) => (v == null ? "" : String(v))));
      item.hay = parts.join("\n").toLowerCase();
    }
    return item.hay;
  }

  // ---- images ----
  function picture(index, caption, item) {
    const url = index == null ? null : data.images[index];
    const node = url
      ? el("img", { src: url, alt: caption, title: caption + (item ? ": " + item.id : "") })
      : el("div", { class: "noimg", title: caption }, index == null ? "no " + caption : "unreadable");
    if (item) node.addEventListener("click", () => openDetail(item));
    return node;
  }
  function pictures(item, clickable) {
    const out = [picture(item.src, "source", clickable && item), picture(item.edit, CMP ? "edit " + LABELS[0] : "edit", clickable && item)];
    if (item.edit_b !== undefined) out.push(picture(item.edit_b, "edit " + LABELS[1], clickable && item));
    return out;
  }

  // ---- header: runs, problems ----
  function runCard(run) {
    const info = data.runs[run];
    const present = items.filter((i) => result(i, run));
    const ok = present.filter((i) => status(i, run) === "ok");
    const scores = ok.map((i) => value(i, run, "score")).filter((v) => v != null);
    const codes = {};
    for (const i of present) {
      const r = result(i, run);
      if (r.error) codes[r.error.code] = (codes[r.error.code] || 0) + 1;
    }
    const errors = present.length - ok.length;
    const fp = info.fingerprint || {};
    const rows = [
      ["file", info.file],
      ["results", `${present.length} (${ok.length} ok, ${errors} error` + (items.length > present.length ? `, ${items.length - present.length} missing)` : ")")],
      ["score", scores.length ? `mean ${fmt(mean(scores))}, median ${fmt(median(scores))}` : "\u2013"],
      ["errors", Object.entries(codes).sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(", ") || "none"],
      ["model", fp.model || "\u2013"],
      ["protocol", (fp.protocol || "\u2013") + (fp.template_hash ? ` (${String(fp.template_hash).slice(0, 12)})` : "")],
      ["vLLM", fp.vllm_version || "\u2013"],
    ];
    if (info.fingerprints > 1) rows.push(["note", `${info.fingerprints} different fingerprints in this run`]);
    const dl = el("dl", null, rows.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    return el("div", { class: "run" + (run ? " b" : ""), "data-run": run }, el("h3", { text: (CMP ? LABELS[run] + ": " : "") + info.file }), dl);
  }

  // ---- cards: worst, movers ----
  function card(item, line) {
    const node = el("div", { class: "card", tabindex: "0", "data-id": item.id, onclick: () => openDetail(item), onkeydown: (e) => e.key === "Enter" && openDetail(item) },
      hasImages ? el("div", { class: "pair" }, pictures(item, false).slice(0, 2)) : null,
      el("div", { class: "line" }, el("b", { text: item.id }), " ", line),
      item.instruction ? el("div", { class: "line muted", title: item.instruction, text: item.instruction }) : null);
    return node;
  }
  function drawCards() {
    const scored = items.filter((i) => value(i, 0, "score") != null);
    const worst = scored.sort((p, q) => value(p, 0, "score") - value(q, 0, "score") || p.index - q.index).slice(0, data.worst);
    $("worst-title").textContent = `Lowest ${worst.length} scores` + (CMP ? ` (${LABELS[0]})` : "");
    $("worst").replaceChildren(...(worst.length ? worst.map((i) => card(i, "score " + fmt(value(i, 0, "score")))) : [el("p", { class: "muted", text: "No scored items." })]));
    if (!CMP) return;
    const moved = items.filter((i) => delta(i, "score")).sort((p, q) => Math.abs(delta(q, "score")) - Math.abs(delta(p, "score")) || p.index - q.index).slice(0, data.worst);
    $("movers-section").hidden = false;
    $("movers-title").textContent = `Moved most: ${LABELS[0]} \u2192 ${LABELS[1]}`;
    $("movers").replaceChildren(...(moved.length ? moved.map((i) => card(i, `${fmt(value(i, 0, "score"))} \u2192 ${fmt(value(i, 1, "score"))} (${signed(delta(i, "score"))})`)) : [el("p", { class: "muted", text: "No item changed its score." })]));
  }

  // ---- filters ----
  const rangeKeys = data.metrics.map((m) => "m:0:" + m).concat(CMP ? ["m:1:score", "d:score"] : []);
  function keyLabel(key) {
    const [kind, run] = key.split(":");
    if (kind === "d") return "\u0394 " + key.slice(2);
    if (kind === "m") return key.slice(4) + (CMP ? " " + LABELS[+run] : "");
    if (kind === "meta") return key.slice(5);
    return key;
  }
  function statusOptions(run) {
    const counts = {};
    for (const i of items) {
      const r = result(i, run);
      const s = status(i, run);
      counts[s] = (counts[s] || 0) + 1;
      if (r && r.error) counts["error:" + r.error.code] = (counts["error:" + r.error.code] || 0) + 1;
    }
    return [el("option", { value: "", text: "any" })].concat(Object.keys(counts).sort().map((k) => el("option", { value: k, text: `${k.replace("error:", "error: ")} (${counts[k]})` })));
  }
  function buildFilters() {
    const form = $("filters");
    form.append(el("label", null, "search", el("input", { type: "search", id: "f-search", placeholder: "id, instruction, reasoning, meta" })));
    for (const run of RUNS) form.append(el("label", null, "status" + (CMP ? " " + LABELS[run] : ""), el("select", { id: "f-status-" + run }, statusOptions(run))));
    for (const key of rangeKeys) {
      form.append(el("label", null, keyLabel(key), el("span", { class: "range" },
        el("input", { type: "number", step: "any", placeholder: "min", "data-key": key, "data-end": "min" }),
        el("input", { type: "number", step: "any", placeholder: "max", "data-key": key, "data-end": "max" }))));
    }
    for (const field of data.meta) {
      const values = [...new Set(items.map((i) => i.meta[field]).filter((v) => v != null).map(String))].sort((a, b) => compare(a, b));
      const control = values.length <= 40
        ? el("select", { "data-meta": field }, el("option", { value: "", text: "any" }), values.map((v) => el("option", { value: v, text: v })))
        : el("input", { type: "search", "data-meta": field, "data-contains": true, placeholder: "contains" });
      form.append(el("label", null, field, control));
    }
    form.append(el("button", { type: "reset", id: "f-reset" }, "Reset filters"));
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    form.addEventListener("reset", () => setTimeout(update, 0));
    form.addEventListener("submit", (e) => e.preventDefault());
  }
  function readFilter() {
    const f = { search: $("f-search").value.trim().toLowerCase(), status: RUNS.map((r) => $("f-status-" + r).value), ranges: [], meta: [] };
    const ranges = {};
    for (const input of document.querySelectorAll("#filters input[data-key]")) {
      if (input.value === "" || isNaN(+input.value)) continue;
      (ranges[input.dataset.key] = ranges[input.dataset.key] || {})[input.dataset.end] = +input.value;
    }
    f.ranges = Object.entries(ranges);
    for (const c of document.querySelectorAll("#filters [data-meta]")) {
      if (c.value !== "") f.meta.push([c.dataset.meta, c.value.toLowerCase(), c.dataset.contains != null]);
    }
    return f;
  }
  function passes(item, f) {
    if (f.search && !haystack(item).includes(f.search)) return false;
    for (const run of RUNS) {
      const want = f.status[run];
      if (want && (want.startsWith("error:") ? sortValue(item, "status:" + run) !== want : status(item, run) !== want)) return false;
    }
    for (const [key, { min, max }] of f.ranges) {
      const v = sortValue(item, key);
      if (v == null || (min != null && v < min) || (max != null && v > max)) return false;
    }
    for (const [field, want, contains] of f.meta) {
      const v = item.meta[field] == null ? "" : String(item.meta[field]).toLowerCase();
      if (contains ? !v.includes(want) : v !== want) return false;
    }
    return true;
  }
  function setRange(key, lo, hi) {
    for (const input of document.querySelectorAll("#filters input[data-key]")) {
      if (input.dataset.key === key) input.value = fmt(input.dataset.end === "min" ? lo : hi, 4);
    }
    update();
  }

  // ---- distributions ----
  // Integer-valued metrics (a judge's 0-10 sub-scores) get one bar per value; others 20 bars.
  function bins(values, fixed) {
    let lo = fixed ? fixed[0] : Math.min(...values);
    let hi = fixed ? fixed[1] : Math.max(...values);
    if (values.every(Number.isInteger) && hi - lo <= 30) {
      lo = Math.floor(lo); hi = Math.ceil(hi);
      const edges = Array.from({ length: hi - lo + 1 }, (_, k) => [lo + k - 0.5, lo + k + 0.5]);
      return { edges, first: lo, last: hi };
    }
    if (hi === lo) { lo -= 0.5; hi += 0.5; }
    const w = (hi - lo) / 20;
    const edges = Array.from({ length: 20 }, (_, k) => [lo + k * w, k === 19 ? hi : lo + (k + 1) * w]);
    return { edges, first: lo, last: hi };
  }
  function histogram(title, key, series, fixed, all) {
    const { edges, first, last } = bins(all, fixed);
    const W = 260, H = 96, top = 6;
    const counts = series.map((s) => edges.map(([a, b], k) => s.values.filter((v) => v >= a && (v < b || (k === edges.length - 1 && v <= b))).length));
    const peak = Math.max(1, ...counts.flat());
    const box = svg("svg", { width: W, height: H + 16, viewBox: `0 0 ${W} ${H + 16}`, role: "img", "aria-label": title });
    const bw = W / Math.max(1, edges.length);
    edges.forEach(([a, b], k) => {
      series.forEach((s, j) => {
        const h = (counts[j][k] / peak) * (H - top);
        const bar = svg("rect", { class: "bar", x: k * bw + (j * bw) / series.length + 0.5, y: H - h, width: Math.max(1, bw / series.length - 1), height: Math.max(h, 0.5), fill: s.color });
        const t = svg("title");
        t.textContent = `${s.label}: ${counts[j][k]} in [${fmt(a)}, ${fmt(b)}]`;
        bar.append(t);
        bar.addEventListener("click", () => setRange(key, a, b));
        box.append(bar);
      });
    });
    const axis = (x, text, anchor) => { const t = svg("text", { x, y: H + 13, "font-size": 10, "text-anchor": anchor, fill: "#6b7580" }); t.textContent = text; return t; };
    box.append(axis(1, fmt(first), "start"), axis(W - 1, fmt(last), "end"));
    const stats = series.map((s) => el("div", { class: s.css }, `${s.label ? s.label + ": " : ""}n ${s.values.length}, mean ${fmt(mean(s.values))}, median ${fmt(median(s.values))}`));
    return el("div", { class: "dist", "data-metric": title }, el("h3", { text: title }), box, stats);
  }
  function drawDists(shown) {
    const charts = [];
    for (const metric of data.metrics) {
      const all = [];
      const series = RUNS.map((run) => {
        const values = shown.map((i) => value(i, run, metric)).filter((v) => v != null);
        all.push(...items.map((i) => value(i, run, metric)).filter((v) => v != null));
        return { label: CMP ? LABELS[run] : "", values, color: run ? "#d9822b" : "#3b6fb6", css: run ? "legend-b" : "legend-a" };
      });
      if (all.length) charts.push(histogram(metric, "m:0:" + metric, series, metric === "score" ? [0, 10] : null, all));
    }
    if (CMP) {
      const ds = items.map((i) => delta(i, "score")).filter((v) => v != null);
      const m = Math.max(1, ...ds.map(Math.abs));
      const values = shown.map((i) => delta(i, "score")).filter((v) => v != null);
      if (ds.length) charts.push(histogram("\u0394 score", "d:score", [{ label: "", values, color: "#7a5195", css: "" }], [-m, m], ds));
    }
    $("dists").replaceChildren(...charts);
  }

  // ---- the table ----
  function judgeCell(item) {
    const parts = [];
    for (const run of RUNS) {
      const r = result(item, run);
      const tag = CMP ? el("span", { class: "tag" + (run ? " b" : ""), text: LABELS[run] }) : null;
      if (!r) { parts.push(el("div", null, tag, el("span", { class: "status-missing", text: "no result" }))); continue; }
      const error = r.error ? el("div", { class: "status-error" }, el("b", { text: r.error.code }), ": ", r.error.message) : null;
      const text = r.reasoning || "";
      const reasoning = text.length > 220 ? el("details", null, el("summary", { text: text.slice(0, 200) + "\u2026" }), text.slice(200)) : text ? el("div", { text }) : null;
      parts.push(el("div", { class: "judge-run" }, tag, error, reasoning));
    }
    return el("td", { class: "judge" }, parts);
  }
  function metricCell(item, metric) {
    if (!CMP) return el("td", { class: "num" }, fmt(value(item, 0, metric)));
    const d = delta(item, metric);
    return el("td", { class: "num" }, `${fmt(value(item, 0, metric))} \u2192 ${fmt(value(item, 1, metric))} `, el("span", { class: d > 0 ? "delta-up" : d < 0 ? "delta-down" : "", text: d == null ? "" : `(${signed(d)})` }));
  }
  function statusCell(item) {
    return el("td", { class: "status" }, RUNS.map((run) => el("div", { class: "status-" + status(item, run) }, CMP ? el("span", { class: "tag" + (run ? " b" : ""), text: LABELS[run] }) : null, status(item, run))));
  }
  function columns() {
    const cols = [
      { label: "#", key: "index", cell: (i) => el("td", { class: "num" }, i.index + 1) },
      { label: "id", key: "id", cell: (i) => el("td", { class: "id" }, i.id) },
    ];
    if (hasImages) cols.push({ label: CMP && items.some((i) => i.edit_b !== undefined) ? `source | edit ${LABELS[0]} | edit ${LABELS[1]}` : "source | edit", cell: (i) => el("td", { class: "imgs" }, pictures(i, true)) });
    if (hasInstructions) cols.push({ label: "instruction", cell: (i) => el("td", { class: "instr" }, i.instruction || "") });
    cols.push({ label: "status", key: "status:0", cell: statusCell });
    if (CMP) {
      cols.push({ label: "score " + LABELS[0], key: "m:0:score", cell: (i) => el("td", { class: "num" }, fmt(value(i, 0, "score"))) });
      cols.push({ label: "score " + LABELS[1], key: "m:1:score", cell: (i) => el("td", { class: "num" }, fmt(value(i, 1, "score"))) });
      cols.push({ label: "\u0394 score", key: "d:score", cell: (i) => { const d = delta(i, "score"); return el("td", { class: "num " + (d > 0 ? "delta-up" : d < 0 ? "delta-down" : "") }, signed(d)); } });
    }
    for (const metric of data.metrics) {
      if (CMP && metric === "score") continue;
      cols.push({ label: CMP ? metric + " (\u0394)" : metric, key: (CMP ? "d:" : "m:0:") + metric, cell: (i) => metricCell(i, metric) });
    }
    for (const field of data.meta) cols.push({ label: field, key: "meta:" + field, cell: (i) => el("td", null, i.meta[field] == null ? "" : String(i.meta[field])) });
    cols.push({ label: "judge", cell: judgeCell });
    return cols;
  }
  const COLS = columns();
  function drawHead() {
    $("head").replaceChildren(...COLS.map((c) => {
      const th = el("th", { class: c.key ? "sortable" : null, "data-key": c.key, title: c.key ? "sort by " + c.label : null }, c.label);
      if (c.key === state.key) th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      if (c.key) th.addEventListener("click", () => sortBy(c.key));
      return th;
    }));
  }
  function sortBy(key) {
    state.dir = state.key === key ? -state.dir : 1;
    state.key = key;
    state.shown = PAGE;
    update();
  }
  function drawRows(list) {
    const rows = list.slice(0, state.shown).map((item) => el("tr", { id: "item-" + item.index, "data-id": item.id }, COLS.map((c) => c.cell(item))));
    $("rows").replaceChildren(...rows);
    $("count").textContent = `showing ${rows.length} of ${list.length}` + (list.length !== items.length ? ` (filtered from ${items.length})` : "");
    const more = $("more");
    more.hidden = list.length <= state.shown;
    more.textContent = `Show ${Math.min(PAGE, list.length - state.shown)} more`;
  }

  // ---- detail overlay ----
  function openDetail(item) {
    const head = ["", ...RUNS.map((r) => LABELS[r])].concat(CMP ? ["\u0394"] : []);
    const metricRows = data.metrics.map((m) => el("tr", null, el("th", { text: m }), RUNS.map((r) => el("td", { class: "num" }, fmt(value(item, r, m), 3))), CMP ? el("td", { class: "num" }, signed(delta(item, m))) : null));
    const infoRow = (name, get) => el("tr", null, el("th", { text: name }), RUNS.map((r) => el("td", null, result(item, r) ? get(result(item, r)) : "")), CMP ? el("td") : null);
    const table = el("table", null, el("thead", null, el("tr", null, head.map((h) => el("th", { text: h })))), el("tbody", null,
      infoRow("status", (r) => r.status + (r.error ? ` (${r.error.code})` : "")), metricRows,
      infoRow("rank / z", (r) => (r.rank == null ? "" : `#${r.rank}, z ${fmt(r.z_score)}`)), infoRow("backend", (r) => r.backend || ""), infoRow("latency ms", (r) => fmt(r.latency_ms, 1))));
    const texts = RUNS.map((run) => {
      const r = result(item, run);
      if (!r) return el("p", { class: "status-missing", text: (CMP ? LABELS[run] + ": " : "") + "no result" });
      return el("div", null, el("h3", { text: "Judge" + (CMP ? " " + LABELS[run] : "") }),
        r.error ? el("p", { class: "status-error" }, el("b", { text: r.error.code }), ": ", r.error.message) : null,
        r.reasoning ? el("pre", { text: r.reasoning }) : null,
        r.raw ? el("details", null, el("summary", { text: "raw reply" }), el("pre", { text: r.raw })) : null);
    });
    const figures = hasImages ? el("div", { class: "big" }, pictures(item, false).map((img) => el("figure", null, img, el("figcaption", { text: img.getAttribute("alt") || img.title })))) : null;
    const meta = data.meta.length ? el("table", null, el("tbody", null, data.meta.map((f) => el("tr", null, el("th", { text: f }), el("td", { text: item.meta[f] == null ? "" : String(item.meta[f]) }))))) : null;
    $("detail").replaceChildren(el("h2", { text: item.id }), item.instruction ? el("p", null, el("b", { text: "Instruction: " }), item.instruction) : null, figures, table, meta, ...texts);
    $("overlay").hidden = false;
    $("close").focus();
  }
  function closeDetail() { $("overlay").hidden = true; }

  // ---- wiring ----
  function update() {
    const f = readFilter();
    const shown = items.filter((i) => passes(i, f));
    drawHead();
    drawRows(sorted(shown));
    drawDists(shown);
  }
  $("title").textContent = data.title;
  $("generated").textContent = `${items.length} items, generated ${data.generated}` + (CMP ? `; comparing ${LABELS[1]} against ${LABELS[0]}` : "");
  $("runs").replaceChildren(...RUNS.map(runCard));
  if (data.image_problems.length) {
    $("problems").hidden = false;
    $("problems").textContent = `${data.image_problems.length} image(s) could not be shown: ` + data.image_problems.slice(0, 3).join("; ") + (data.image_problems.length > 3 ? "; \u2026" : "");
  }
  $("more").addEventListener("click", () => { state.shown += PAGE; update(); });
  $("close").addEventListener("click", closeDetail);
  $("overlay").addEventListener("click", (e) => { if (e.target === $("overlay")) closeDetail(); });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeDetail(); });
  buildFilters();
  drawCards();
  update();
  document.body.dataset.ready = "true";
})();
