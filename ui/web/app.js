// The tierlog search page. Plain DOM, no framework: every value from the node is set as
// text (never parsed as HTML), so a hostile log line stays a log line.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const RANGES = { "15m": 15 * 60e3, "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3 };
  const HITS = 100;
  const LIVE_ROWS = 1000;
  const state = { stream: "", mode: "search", q: "*", range: "1h", from: "", to: "", tab: "hits" };
  let streams = [];
  let token = sessionStorage.getItem("tierlog.token") || "";
  let plot = null;
  let live = null;
  let rows = [];
  let selected = -1;
  let runs = 0;

  // ---- URL: the view is in the fragment, so a link shares it.
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    for (const k of Object.keys(state)) if (p.has(k)) state[k] = p.get(k);
  }
  function writeHash() {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(state)) if (v) p.set(k, v);
    history.replaceState(null, "", "#" + p.toString());
  }

  // ---- The node's API, with the token when there is one.
  class ApiError extends Error {
    constructor(status, body) {
      super(body && body.error ? body.error : `HTTP ${status}`);
      this.status = status;
      this.kind = body && body.kind;
    }
  }
  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, Object.assign({}, options, { headers }));
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch (_) {
      body = { error: text || `HTTP ${response.status}` };
    }
    if (response.status === 401) {
      const refused = Boolean(token);
      token = "";
      sessionStorage.removeItem("tierlog.token");
      showLogin(refused ? "That token was refused." : "");
      throw new ApiError(401, body);
    }
    if (!response.ok || body.error) throw new ApiError(response.status, body);
    return body;
  }
  const sql = (statement) =>
    api("/api/v1/sql", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ sql: statement }) });
  const literal = (s) => "'" + String(s).replace(/'/g, "''") + "'";

  // ---- Time range: [start, end) as RFC 3339, either may be null.
  function bounds() {
    if (state.range === "all") return [null, null];
    if (state.range === "custom") return [state.from ? state.from + "Z" : null, state.to ? state.to + "Z" : null];
    const end = Date.now();
    return [new Date(end - RANGES[state.range]).toISOString(), new Date(end).toISOString()];
  }
  function timeCondition() {
    const [start, end] = bounds();
    const parts = [];
    if (start) parts.push(`_timestamp >= to_timestamp_micros(${literal(start)})`);
    if (end) parts.push(`_timestamp < to_timestamp_micros(${literal(end)})`);
    return parts.length ? "WHERE " + parts.join(" AND ") : "";
  }
  const localInput = (iso) => iso.replace(/\.\d+Z$|Z$/, "");

  // ---- Small DOM helpers.
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return e;
  }
  function fill(table, columns, body) {
    table.tHead.replaceChildren(el("tr", {}, ...columns.map((c) => el("th", { scope: "col" }, c))));
    table.tBodies[0].replaceChildren(...body);
  }
  function showError(e) {
    const box = $("error");
    if (!e) {
      box.hidden = true;
      return;
    }
    box.textContent = e.kind ? `${e.message} (${e.kind})` : e.message;
    box.hidden = false;
  }
  const status = (text) => ($("status").textContent = text);
  const bytes = (n) => {
    if (n == null) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
    return (i ? n.toFixed(1) : n) + " " + units[i];
  };
  const age = (s) => (s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`);

  // ---- Streams and their main field.
  function stream() {
    return streams.find((s) => s.name === state.stream);
  }
  function mainField() {
    const columns = (stream() || { columns: [] }).columns;
    for (const name of ["message", "body"]) if (columns.some((c) => c.name === name)) return name;
    const text = columns.find((c) => !c.name.startsWith("_") && /Utf8/.test(c.type));
    return text ? text.name : "_attributes";
  }

  // ---- Hits: newest first, each expandable to every field.
  function hitRow(row, i) {
    const main = row[mainField()];
    const tr = el(
      "tr",
      { class: "hit", tabIndex: 0, "data-i": i },
      el("td", { class: "ts" }, row._timestamp),
      el("td", { class: "tier tier-" + row._tier }, row._tier),
      el("td", { class: "main" }, typeof main === "string" ? main : JSON.stringify(main)),
    );
    tr.addEventListener("click", () => select(i, true));
    return tr;
  }
  function details(row) {
    const fields = Object.assign({}, row);
    if (typeof fields._attributes === "string") {
      try {
        fields._attributes = JSON.parse(fields._attributes);
      } catch (_) {
        /* shown as written */
      }
    }
    const list = el("dl");
    for (const [k, v] of Object.entries(fields)) {
      if (v === null) continue;
      list.append(el("dt", {}, k), el("dd", {}, typeof v === "string" ? v : JSON.stringify(v, null, 2)));
    }
    return el("tr", { class: "details" }, el("td", { colSpan: 3 }, list));
  }
  function renderHits() {
    const body = rows.map(hitRow);
    fill($("hits"), ["_timestamp", "_tier", mainField()], body);
    selected = -1;
  }
  function select(i, toggle) {
    const trs = [...$("hits").tBodies[0].querySelectorAll("tr.hit")];
    if (!trs.length) return;
    selected = Math.max(0, Math.min(i, trs.length - 1));
    const tr = trs[selected];
    tr.focus();
    if (toggle) {
      const next = tr.nextElementSibling;
      if (next && next.classList.contains("details")) next.remove();
      else tr.after(details(rows[selected]));
    }
  }

  // ---- Histogram (uPlot bars); drag across it to zoom into that range.
  function drawHistogram(histogram) {
    const box = $("histogram");
    const buckets = histogram ? histogram.buckets : [];
    const xs = buckets.map((b) => Date.parse(b.start) / 1000);
    const ys = buckets.map((b) => b.count);
    // The same numbers as a table, for screen readers (and for tests).
    const data = el("table", { id: "histogram-data", class: "sr" });
    data.append(el("caption", {}, `Matches per ${histogram ? histogram.bucket_seconds : 0} s`));
    for (const b of buckets) data.append(el("tr", {}, el("td", {}, b.start), el("td", {}, b.count)));
    if (plot) plot.destroy();
    plot = null;
    box.replaceChildren(data);
    if (!xs.length || typeof uPlot === "undefined") return;
    const width = histogram.bucket_seconds;
    const options = {
      width: box.clientWidth || 800,
      height: 140,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false } },
      // The buckets' own span (uPlot would pad a lone bucket to years), in UTC like the rest.
      scales: { x: { time: true, range: () => [xs[0], xs[xs.length - 1] + width] } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      axes: [{}, { size: 50 }],
      series: [{}, { label: "matches", fill: "rgba(40,110,200,0.5)", stroke: "rgb(40,110,200)", paths: uPlot.paths.bars({ size: [0.9, 64], align: 1 }), points: { show: false } }],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const from = u.posToVal(u.select.left, "x");
            const to = u.posToVal(u.select.left + u.select.width, "x");
            state.range = "custom";
            state.from = localInput(new Date(from * 1000).toISOString());
            state.to = localInput(new Date(to * 1000).toISOString());
            syncControls();
            run();
          },
        ],
      },
    };
    plot = new uPlot(options, [xs, ys], box);
  }

  // ---- Running the view.
  async function run() {
    const mine = ++runs;
    writeHash();
    showError(null);
    stopLive();
    try {
      if (state.tab === "errors") await runErrors(mine);
      else if (state.tab === "lifecycle") await runLifecycle(mine);
      else if (state.mode === "sql") await runSql(mine);
      else await runSearch(mine);
    } catch (e) {
      if (mine === runs && e.status !== 401) {
        showError(e);
        status("");
        if (state.tab === "hits") {
          // Old rows under a new error would read as its answer.
          rows = [];
          renderHits();
          drawHistogram(null);
        }
      }
    }
    if ($("live").checked && state.tab === "hits" && state.mode === "search") startLive();
  }

  async function runSearch(mine) {
    const [start, end] = bounds();
    const p = new URLSearchParams({ stream: state.stream, q: state.q || "*", limit: String(HITS) });
    if (start) p.set("start", start);
    if (end) p.set("end", end);
    status("searching…");
    const answer = await api("/api/v1/search?" + p.toString());
    if (mine !== runs) return;
    rows = answer.hits;
    renderHits();
    drawHistogram(answer.histogram);
    status(`${answer.total} matching, newest ${rows.length} shown, ${answer.elapsed_ms} ms`);
  }

  async function runSql(mine) {
    status("running…");
    const answer = await sql(state.q);
    if (mine !== runs) return;
    const columns = answer.columns.map((c) => c.name);
    rows = answer.rows;
    const body = rows.map((row) => el("tr", {}, ...columns.map((c) => el("td", {}, typeof row[c] === "object" && row[c] !== null ? JSON.stringify(row[c]) : row[c]))));
    fill($("hits"), columns, body);
    drawHistogram(null);
    status(`${answer.num_rows} rows${answer.truncated ? " (cut at the row limit)" : ""}, ${answer.elapsed_ms} ms`);
  }

  async function runErrors(mine) {
    const s = stream();
    if (!s) return;
    const where = timeCondition();
    const counts = await sql(`SELECT reason, count(*) AS n FROM "${s.error_table}" ${where} GROUP BY 1 ORDER BY 2 DESC`);
    const latest = await sql(`SELECT _timestamp, reason, detail, payload, _tier FROM "${s.error_table}" ${where} ORDER BY _timestamp DESC LIMIT ${HITS}`);
    if (mine !== runs) return;
    fill($("error-counts"), ["reason", "messages"], counts.rows.map((r) => el("tr", {}, el("td", {}, r.reason), el("td", {}, r.n))));
    const cols = ["_timestamp", "reason", "detail", "payload", "_tier"];
    fill($("errors"), cols, latest.rows.map((r) => el("tr", {}, ...cols.map((c) => el("td", { class: c === "payload" ? "main" : "" }, r[c])))));
    const total = counts.rows.reduce((a, r) => a + r.n, 0);
    status(`${total} undecodable messages in ${s.error_table}, newest ${latest.rows.length} shown`);
  }

  async function runLifecycle(mine) {
    const plan = await api("/api/v1/lifecycle?stream=" + encodeURIComponent(state.stream));
    if (mine !== runs) return;
    const entries = plan.streams.length ? plan.streams[0].entries : [];
    const cols = ["tier", "table", "segment", "state", "rows", "size", "age", "next", "when", "why"];
    const body = entries.map((e) =>
      el(
        "tr",
        {},
        el("td", { class: "tier tier-" + e.tier }, e.tier),
        el("td", {}, e.table),
        el("td", { class: "id" }, e.id),
        el("td", {}, e.state),
        el("td", { class: "num" }, e.rows),
        el("td", { class: "num" }, bytes(e.bytes)),
        el("td", { class: "num" }, age(e.age_s)),
        el("td", {}, e.next + (e.error ? ` (failed: ${e.error})` : "")),
        el("td", {}, e.at || ""),
        el("td", {}, e.why),
      ),
    );
    fill($("lifecycle"), cols, body);
    const version = plan.streams.length ? plan.streams[0].cold_version : null;
    status(`${entries.length} hot generations and cold segments; cold table version ${version == null ? "none yet" : version}`);
  }

  // ---- Live tail: Server-Sent Events over fetch (EventSource cannot send a token).
  function stopLive() {
    if (live) live.abort();
    live = null;
  }
  async function startLive() {
    stopLive();
    const controller = new AbortController();
    live = controller;
    const headers = { Accept: "text/event-stream" };
    if (token) headers.Authorization = "Bearer " + token;
    const p = new URLSearchParams({ stream: state.stream, q: state.q || "*" });
    let received = 0;
    try {
      const response = await fetch("/api/v1/tail?" + p.toString(), { headers, signal: controller.signal });
      if (!response.ok) {
        const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
        throw new ApiError(response.status, body);
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trimStart();
          }
          if (!data) continue;
          const payload = JSON.parse(data);
          if (event === "ready") status("live: following new matching rows…");
          else if (event === "row") {
            received++;
            rows.unshift(payload);
            if (rows.length > LIVE_ROWS) rows.length = LIVE_ROWS;
            const tbody = $("hits").tBodies[0];
            tbody.prepend(hitRow(payload, 0));
            [...tbody.querySelectorAll("tr.hit")].forEach((tr, i) => tr.setAttribute("data-i", i));
            while (tbody.querySelectorAll("tr.hit").length > LIVE_ROWS) tbody.lastElementChild.remove();
            status(`live: ${received} new rows`);
          } else throw new ApiError(200, payload);
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
      showError(e);
      $("live").checked = false;
    }
    if (live === controller) live = null;
  }

  // ---- Controls.
  function syncControls() {
    $("stream").value = state.stream;
    for (const r of document.querySelectorAll("input[name=mode]")) r.checked = r.value === state.mode;
    $("q").value = state.q;
    $("q").placeholder = state.mode === "sql" ? "SQL: SELECT level, count(*) FROM stream GROUP BY 1" : $("q").dataset.search;
    $("range").value = state.range;
    $("custom").hidden = state.range !== "custom";
    $("from").value = state.from;
    $("to").value = state.to;
    for (const b of document.querySelectorAll("[role=tab]")) b.setAttribute("aria-selected", String(b.dataset.tab === state.tab));
    for (const t of ["hits", "errors", "lifecycle"]) $("tab-" + t).hidden = t !== state.tab;
    $("histogram").hidden = state.mode === "sql";
  }
  function setTab(tab) {
    state.tab = tab;
    syncControls();
    run();
  }
  function wire() {
    $("q").dataset.search = $("q").placeholder;
    $("stream").addEventListener("change", () => {
      state.stream = $("stream").value;
      if (state.mode === "sql") state.q = `SELECT * FROM "${state.stream}" ORDER BY _timestamp DESC LIMIT ${HITS}`;
      syncControls();
      run();
    });
    for (const r of document.querySelectorAll("input[name=mode]")) {
      r.addEventListener("change", () => {
        state.mode = r.value;
        state.q = state.mode === "sql" ? `SELECT * FROM "${state.stream}" ORDER BY _timestamp DESC LIMIT ${HITS}` : "*";
        syncControls();
        run();
      });
    }
    $("range").addEventListener("change", () => {
      state.range = $("range").value;
      if (state.range === "custom" && !state.from) {
        const [start, end] = [new Date(Date.now() - 3600e3), new Date()];
        state.from = localInput(start.toISOString());
        state.to = localInput(end.toISOString());
      }
      syncControls();
      if (state.range !== "custom") run();
    });
    for (const id of ["from", "to"]) {
      $(id).addEventListener("change", () => {
        state[id] = $(id).value;
        run();
      });
    }
    $("run").addEventListener("click", () => {
      state.q = $("q").value;
      run();
    });
    $("live").addEventListener("change", () => ($("live").checked ? run() : (stopLive(), status("live: off"))));
    for (const b of document.querySelectorAll("[role=tab]")) b.addEventListener("click", () => setTab(b.dataset.tab));
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem("tierlog.token");
      token = "";
      location.reload();
    });
    document.addEventListener("keydown", (e) => {
      const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName);
      if (typing) {
        if (e.key === "Enter" && e.target.id === "q") {
          state.q = $("q").value;
          run();
        } else if (e.key === "Escape") e.target.blur();
        return;
      }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const keys = {
        "/": () => $("q").focus(),
        j: () => select(selected + 1, false),
        ArrowDown: () => select(selected + 1, false),
        k: () => select(selected - 1, false),
        ArrowUp: () => select(selected - 1, false),
        o: () => select(selected, true),
        Enter: () => select(selected, true),
        l: () => {
          $("live").checked = !$("live").checked;
          $("live").dispatchEvent(new Event("change"));
        },
        1: () => setTab("hits"),
        2: () => setTab("errors"),
        3: () => setTab("lifecycle"),
      };
      if (keys[e.key]) {
        e.preventDefault();
        keys[e.key]();
      }
    });
    window.addEventListener("resize", () => plot && plot.setSize({ width: $("histogram").clientWidth, height: 140 }));
  }

  // ---- Signing in: with users configured, nothing shows before a token works.
  function showLogin(message) {
    stopLive();
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").focus();
  }
  async function start() {
    let answer;
    try {
      answer = await api("/api/v1/streams");
    } catch (e) {
      if (e.status !== 401) {
        $("app").hidden = false;
        showError(e);
      }
      return;
    }
    streams = answer.streams;
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = !token;
    $("stream").replaceChildren(...streams.map((s) => el("option", { value: s.name }, s.name)));
    readHash();
    if (!streams.some((s) => s.name === state.stream)) state.stream = streams.length ? streams[0].name : "";
    if (!streams.length) {
      status("No streams are configured (or none is granted to this token).");
      return;
    }
    syncControls();
    run();
  }
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    token = $("token").value.trim();
    sessionStorage.setItem("tierlog.token", token);
    start();
  });
  wire();
  start();
})();
