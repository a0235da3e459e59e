"use strict";
// The Conduit dashboard: fetches /api/summary and draws it as SVG. Text only ever goes in
// through textContent or attributes, never as HTML, so a model named <script> stays text.
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 10000;
  const PALETTE = ["#2f6fdf", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4",
                   "#bf9b30", "#6a7f99", "#8b572a", "#52b043", "#d9534f", "#3d3d9e"];
  const OTHER = "#b8bfc7";

  // -- the token: from ?token= once (then out of the address bar), else this tab's storage --
  const params = new URLSearchParams(window.location.search);
  let token = sessionStorage.getItem("conduit-dashboard-token") || "";
  if (params.has("token")) {
    token = params.get("token") || "";
    sessionStorage.setItem("conduit-dashboard-token", token);
    params.delete("token");
    const rest = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
  }
  let namespace = params.get("namespace") || "";
  let colors = new Map();

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function html(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function size(node) { const b = node.viewBox.baseVal; return [b.width, b.height]; }
  function color(model) { return colors.get(model) || OTHER; }
  function money(v, digits) {
    if (v === null || v === undefined) return "–";
    const sign = v < 0 ? "-" : "";
    return sign + "$" + Math.abs(v).toFixed(digits === undefined ? 4 : digits);
  }
  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%"; }
  function num(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d); }
  function when(t) {
    const d = new Date(t * 1000);
    return d.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " " +
      d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }
  function empty(node, message) {
    const [w, h] = size(node);
    node.appendChild(svg("text", { x: w / 2, y: h / 2, "text-anchor": "middle", class: "empty" },
      message));
  }

  // -- cards --------------------------------------------------------------------------------
  function cards(data) {
    const box = document.getElementById("cards");
    clear(box);
    const s = data.savings;
    const items = [
      ["decisions", String(data.total_decisions)],
      ["quality feedbacks", String(data.total_feedback)],
      ["total cost", money(data.total_cost)],
      ["saved vs always the dearest", s ? money(s.saved) : "–"],
      ["saved, share", s && s.percent !== null ? s.percent.toFixed(1) + "%" : "–"],
      ["exploration (recent)", pct(data.exploration_share)],
    ];
    for (const [label, value] of items) {
      const card = html("div", null, "card");
      card.appendChild(html("div", value, "value"));
      card.appendChild(html("div", label, "label"));
      box.appendChild(card);
    }
  }

  // -- share of traffic over time: stacked areas -------------------------------------------
  function traffic(data) {
    const node = document.getElementById("chart-traffic");
    clear(node);
    const edges = data.timeline.edges;
    const counts = data.timeline.counts;
    const models = Object.keys(counts);
    if (edges.length < 2 || models.length === 0) { empty(node, "no history yet"); return; }
    const [w, h] = size(node);
    const pad = { l: 44, r: 12, t: 10, b: 26 };
    const bins = edges.length - 1;
    const totals = [];
    for (let i = 0; i < bins; i++) totals.push(models.reduce((a, m) => a + counts[m][i], 0));
    // one x per bin centre; a single bin is drawn across the whole width
    const xs = bins === 1 ? [pad.l, w - pad.r]
      : Array.from({ length: bins }, (_, i) => pad.l + (w - pad.l - pad.r) * i / (bins - 1));
    const at = (i) => (bins === 1 ? 0 : i);
    const y = (share) => pad.t + (h - pad.t - pad.b) * (1 - share);
    for (const share of [0, 0.5, 1]) {
      node.appendChild(svg("line", { x1: pad.l, x2: w - pad.r, y1: y(share), y2: y(share),
        class: share === 0 ? "axis" : "grid-line" }));
      node.appendChild(svg("text", { x: pad.l - 6, y: y(share) + 4, "text-anchor": "end" },
        (share * 100) + "%"));
    }
    const below = xs.map(() => 0);
    for (const model of models) {
      const top = xs.map((_, k) => {
        const i = at(k);
        return below[k] + (totals[i] ? counts[model][i] / totals[i] : 0);
      });
      const upper = xs.map((x, k) => x.toFixed(1) + "," + y(top[k]).toFixed(1));
      const lower = xs.map((x, k) => x.toFixed(1) + "," + y(below[k]).toFixed(1)).reverse();
      const total = counts[model].reduce((a, b) => a + b, 0);
      node.appendChild(svg("path", {
        d: "M" + upper.join("L") + "L" + lower.join("L") + "Z",
        fill: color(model), "fill-opacity": 0.85, class: "area",
        "data-model": model, "data-decisions": total,
      }, undefined)).appendChild(svg("title", {}, model + ": " + total + " decisions"));
      for (let k = 0; k < xs.length; k++) below[k] = top[k];
    }
    const ticks = bins === 1 ? [0] : [0, Math.floor(bins / 2), bins - 1];
    for (const i of ticks) {
      const x = bins === 1 ? (pad.l + w - pad.r) / 2 : xs[i];
      const anchor = bins > 1 && i === 0 ? "start" : bins > 1 && i === bins - 1 ? "end" : "middle";
      node.appendChild(svg("text", { x: x, y: h - 8, "text-anchor": anchor },
        when((edges[i] + edges[i + 1]) / 2)));
    }
  }

  function legend(models) {
    const node = document.getElementById("legend");
    clear(node);
    let x = 4, row = 0;
    const [w] = size(node);
    for (const model of models) {
      const width = 22 + Math.min(model.length, 34) * 6.2;
      if (x + width > w) { x = 4; row += 1; }
      node.appendChild(svg("rect", { x: x, y: 6 + row * 16, width: 10, height: 10,
        fill: color(model), "data-model": model }));
      node.appendChild(svg("text", { x: x + 14, y: 15 + row * 16, class: "label" },
        model.length > 34 ? model.slice(0, 33) + "…" : model));
      x += width;
    }
    node.setAttribute("viewBox", "0 0 " + w + " " + (24 + row * 16));
  }

  // -- quality against cost ----------------------------------------------------------------
  function scatter(data) {
    const node = document.getElementById("chart-scatter");
    const note = document.getElementById("scatter-note");
    clear(node);
    const shown = data.models.filter((m) => m.mean_quality !== null && m.mean_cost !== null);
    const hidden = data.models.filter((m) => !shown.includes(m)).map((m) => m.model);
    note.textContent = hidden.length
      ? "not shown (no quality or cost observed yet): " + hidden.join(", ") : "";
    if (!shown.length) { empty(node, "no model has both quality and cost yet"); return; }
    const [w, h] = size(node);
    const pad = { l: 50, r: 16, t: 14, b: 34 };
    const costs = shown.map((m) => m.mean_cost);
    const positive = costs.filter((c) => c > 0);
    const lo = positive.length ? Math.min(...positive) : 0;
    const hi = Math.max(...costs);
    const log = positive.length === costs.length && hi / lo > 20;
    const fx = log
      ? (c) => Math.log10(c / lo) / Math.log10(hi / lo || 10)
      : (c) => (hi > 0 ? c / hi : 0.5);
    const qs = shown.map((m) => m.mean_quality);
    const qlo = Math.max(0, Math.min(...qs) - 0.05), qhi = Math.min(1, Math.max(...qs) + 0.05);
    const x = (c) => pad.l + (w - pad.l - pad.r) * (shown.length === 1 ? 0.5 : fx(c));
    const y = (q) => pad.t + (h - pad.t - pad.b) * (1 - (q - qlo) / ((qhi - qlo) || 1));
    node.appendChild(svg("line", { x1: pad.l, x2: w - pad.r, y1: h - pad.b, y2: h - pad.b,
      class: "axis" }));
    node.appendChild(svg("line", { x1: pad.l, x2: pad.l, y1: pad.t, y2: h - pad.b, class: "axis" }));
    for (const q of [qlo, (qlo + qhi) / 2, qhi]) {
      node.appendChild(svg("text", { x: pad.l - 6, y: y(q) + 4, "text-anchor": "end" },
        q.toFixed(2)));
    }
    node.appendChild(svg("text", { x: pad.l, y: h - 6 }, money(log ? lo : 0, 6)));
    node.appendChild(svg("text", { x: w - pad.r, y: h - 6, "text-anchor": "end" }, money(hi, 6)));
    node.appendChild(svg("text", { x: (w + pad.l) / 2, y: h - 6, "text-anchor": "middle" },
      "mean cost per query" + (log ? " (log scale)" : "")));
    const placed = [];
    for (const m of shown.slice().sort((a, b) => b.share - a.share)) {
      const cx = x(m.mean_cost), cy = y(m.mean_quality);
      const r = 4 + 14 * Math.sqrt(m.share);
      const dot = svg("circle", { cx: cx.toFixed(1), cy: cy.toFixed(1), r: r.toFixed(1),
        fill: color(m.model), "fill-opacity": 0.75, stroke: "#fff", class: "model-dot",
        "data-model": m.model, "data-quality": m.mean_quality, "data-cost": m.mean_cost,
        "data-share": m.share });
      dot.appendChild(svg("title", {}, m.model + ": quality " + num(m.mean_quality, 3) +
        ", " + money(m.mean_cost, 6) + " a query, " + pct(m.share) + " of traffic"));
      node.appendChild(dot);
      let ly = cy + 4;
      while (placed.some((p) => Math.abs(p - ly) < 12 && Math.abs(p - ly) >= 0)) ly += 12;
      placed.push(ly);
      const right = cx < w * 0.7;
      node.appendChild(svg("text", { x: right ? cx + r + 3 : cx - r - 3, y: ly,
        "text-anchor": right ? "start" : "end", class: "label" },
        m.model.length > 28 ? m.model.slice(0, 27) + "…" : m.model));
    }
  }

  // -- share per model within groups (preference preset, kind of query) -------------------
  // groups in a fixed, meaningful order (presets, then kinds short to long), others after
  const ORDER = ["balanced", "quality", "cost", "speed", "custom",
                 "code", "math", "short", "medium", "long", "unknown"];
  function rank(name) { const i = ORDER.indexOf(name); return i < 0 ? ORDER.length : i; }

  function bars(id, groups) {
    const node = document.getElementById(id);
    clear(node);
    const names = Object.keys(groups).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
    if (!names.length) { empty(node, "no history yet"); return; }
    const [w] = size(node);
    const pad = { l: 92, r: 60 }, row = 26;
    const h = 12 + row * names.length;
    node.setAttribute("viewBox", "0 0 " + w + " " + h);
    names.forEach((group, k) => {
      const counts = groups[group];
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      const top = 6 + k * row;
      node.appendChild(svg("text", { x: pad.l - 8, y: top + 14, "text-anchor": "end",
        class: "label" }, group));
      let x = pad.l;
      for (const [model, n] of Object.entries(counts)) {
        const width = (w - pad.l - pad.r) * n / total;
        const bar = svg("rect", { x: x.toFixed(1), y: top, width: width.toFixed(1), height: 18,
          fill: color(model), class: "bar", "data-group": group, "data-model": model,
          "data-count": n });
        bar.appendChild(svg("title", {}, group + ": " + model + " " + n + " of " + total));
        node.appendChild(bar);
        x += width;
      }
      node.appendChild(svg("text", { x: w - pad.r + 6, y: top + 14 }, "n=" + total));
    });
  }

  // -- savings -----------------------------------------------------------------------------
  function savings(data) {
    const s = data.savings;
    const number = document.getElementById("savings-number");
    const node = document.getElementById("chart-savings");
    const title = document.getElementById("savings-title");
    clear(node);
    document.getElementById("savings-note").textContent = data.savings_note;
    if (!s) {
      title.textContent = "Savings against always the dearest model";
      number.textContent = "–";
      empty(node, "not enough feedback yet");
      return;
    }
    title.textContent = "Savings against always " + s.baseline;
    number.textContent = money(s.saved) + (s.percent !== null ? " (" + s.percent.toFixed(1) +
      "%)" : "") + " over " + s.decisions + " decisions";
    number.className = s.saved < 0 ? "big loss" : "big";
    const pts = data.savings_curve;
    if (pts.length < 2) { empty(node, "no costed decisions in the history yet"); return; }
    const [w, h] = size(node);
    const pad = { l: 64, r: 12, t: 10, b: 24 };
    const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
    const vs = pts.map((p) => p[1]);
    const vlo = Math.min(0, ...vs), vhi = Math.max(0, ...vs);
    const x = (t) => pad.l + (w - pad.l - pad.r) * ((t - t0) / ((t1 - t0) || 1));
    const y = (v) => pad.t + (h - pad.t - pad.b) * (1 - (v - vlo) / ((vhi - vlo) || 1));
    node.appendChild(svg("line", { x1: pad.l, x2: w - pad.r, y1: y(0), y2: y(0), class: "zero" }));
    for (const v of [vlo, vhi]) {
      node.appendChild(svg("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end" },
        money(v, 3)));
    }
    node.appendChild(svg("text", { x: pad.l, y: h - 6 }, when(t0)));
    node.appendChild(svg("text", { x: w - pad.r, y: h - 6, "text-anchor": "end" }, when(t1)));
    const d = "M" + pts.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join("L");
    node.appendChild(svg("path", { d: d, class: "savings-line", "data-points": pts.length,
      "data-final": vs[vs.length - 1] }));
  }

  // -- quality labels by source and the judge's cost ------------------------------------------
  const SOURCE_NAMES = {
    explicit: "explicit (a person)", judge: "judge", shadow: "shadow (pairwise)",
    regeneration: "regeneration", automatic: "automatic signal",
    none: "no signal (answers)",
  };
  function qualitySources(data) {
    const q = data.quality_sources;
    const body = document.querySelector("#sources-table tbody");
    const note = document.getElementById("judge-cost");
    clear(body);
    if (!q) { note.textContent = "no label sources recorded in this namespace yet"; return; }
    for (const [source, n] of Object.entries(q.labels)) {
      const tr = html("tr");
      tr.dataset.source = source;
      tr.appendChild(html("td", SOURCE_NAMES[source] || source));
      tr.appendChild(html("td", String(n), "num"));
      body.appendChild(tr);
    }
    const share = q.judge_share_of_saved;
    note.textContent = "judge: " + money(q.judge_cost) + " over " + q.judge_calls + " calls" +
      (share !== null && share !== undefined ? " (" + pct(share) + " of what routing saved)" : "") +
      "; paused by budget " + q.judge_paused_budget + ", by a full queue " +
      q.judge_paused_queue + "; dropped " + q.judge_dropped + " (" + q.judge_garbage +
      " bad outputs)";
  }

  // -- targets: budgets and quality floors, goal against realised ----------------------------
  function targets(data) {
    const rows = data.targets || [];
    document.getElementById("targets-panel").hidden = rows.length === 0;
    const body = document.querySelector("#targets tbody");
    clear(body);
    for (const t of rows) {
      const floor = t.target.startsWith("quality_floor=");
      const value = (v) => floor ? num(v, 3) : money(v, 6);
      const tr = html("tr");
      tr.dataset.target = t.target;
      tr.appendChild(html("td", t.target));
      tr.appendChild(html("td", String(t.decisions), "num"));
      tr.appendChild(html("td", value(t.goal), "num"));
      tr.appendChild(html("td", value(t.realised), "num"));
      tr.appendChild(html("td", pct(t.cost_share), "num"));
      tr.appendChild(html("td", Number(t.cost_weight).toPrecision(3), "num"));
      tr.appendChild(html("td", t.met === null ? "–" : (t.met ? "yes" : "no")));
      body.appendChild(tr);
    }
  }

  // -- recent decisions --------------------------------------------------------------------
  function recent(data) {
    const body = document.querySelector("#recent tbody");
    clear(body);
    for (const r of data.recent) {
      const tr = html("tr");
      tr.dataset.decision = r.decision_id;
      tr.appendChild(html("td", when(r.time)));
      tr.appendChild(html("td", r.model || "–"));
      const why = html("td", null, "why");
      if (r.exploring) why.appendChild(html("span", "exploring · ", "explore"));
      why.appendChild(document.createTextNode(r.reason || "(no explanation recorded)"));
      tr.appendChild(why);
      tr.appendChild(html("td", num(r.quality, 2), "num"));
      tr.appendChild(html("td", money(r.cost, 6), "num"));
      tr.appendChild(html("td", r.kind || "–"));
      tr.appendChild(html("td", r.preset || "–"));
      body.appendChild(tr);
      if (r.prompt !== null && r.prompt !== undefined) {
        const p = html("tr", null, "prompt");
        const cell = html("td", "prompt: " + r.prompt);
        cell.colSpan = 7;
        p.appendChild(cell);
        body.appendChild(p);
      }
    }
  }

  function header(data) {
    document.getElementById("where").textContent = data.store + " · " +
      (data.algorithm || "no learned state") + " · " + data.history_rows +
      " history records · updated " + new Date(data.generated * 1000).toLocaleTimeString();
    const select = document.getElementById("namespace");
    clear(select);
    const names = data.namespaces.includes(data.namespace)
      ? data.namespaces : [data.namespace].concat(data.namespaces);
    for (const name of names) {
      const option = html("option", name);
      option.value = name;
      option.selected = name === data.namespace;
      select.appendChild(option);
    }
  }

  function draw(data) {
    const names = data.models.map((m) => m.model);
    for (const m of Object.keys(data.timeline.counts)) if (!names.includes(m)) names.push(m);
    colors = new Map(names.slice().sort().map((m, i) =>
      [m, i < PALETTE.length ? PALETTE[i] : OTHER]));
    header(data);
    cards(data);
    traffic(data);
    legend(names);
    scatter(data);
    savings(data);
    qualitySources(data);
    bars("chart-preference", data.by_preference);
    bars("chart-kind", data.by_kind);
    targets(data);
    recent(data);
  }

  async function refresh() {
    const status = document.getElementById("status");
    const url = "api/summary" + (namespace ? "?namespace=" + encodeURIComponent(namespace) : "");
    try {
      const response = await fetch(url, {
        headers: token ? { Authorization: "Bearer " + token } : {},
        cache: "no-store",
        credentials: "omit",
      });
      if (response.status === 401) throw new Error("this dashboard needs its token: open it as …/?token=<token>");
      if (!response.ok) throw new Error("the server answered " + response.status);
      draw(await response.json());
      status.textContent = "";
      document.body.dataset.ready = "true";
      delete document.body.dataset.error;
    } catch (error) {
      status.textContent = String(error.message || error);
      document.body.dataset.error = status.textContent;
    }
  }

  document.getElementById("namespace").addEventListener("change", (event) => {
    namespace = event.target.value;
    const query = new URLSearchParams(window.location.search);
    query.set("namespace", namespace);
    window.history.replaceState(null, "", window.location.pathname + "?" + query.toString());
    refresh();
  });
  refresh();
  window.setInterval(refresh, REFRESH_MS);
})();
