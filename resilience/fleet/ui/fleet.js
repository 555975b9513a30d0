// resman fleet page: reads GET /api/v1/fleet and /api/v1/fleet/events
// every 2 s with the token the reader typed (kept in sessionStorage, this
// tab only) and shows one row per pair, worst first, and the feed of
// recent changes. Read-only; text is set with textContent only.
"use strict";
(function () {
  const KEY = "resman-fleet-token";
  const PERIOD = 2000;
  const $ = (id) => document.getElementById(id);
  const SHOWN_EVENTS = 50;
  let pairs = [];
  let events = [];
  let timer = null;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function showLogin(msg) {
    clearTimeout(timer);
    $("fleet").hidden = true;
    $("forget").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = msg || "";
    $("live").textContent = "";
    $("token").focus();
  }

  async function load() {
    const token = sessionStorage.getItem(KEY);
    if (!token) { showLogin(); return; }
    try {
      const r = await fetch("/api/v1/fleet", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      if (r.status === 401) { sessionStorage.removeItem(KEY); showLogin("The token was refused."); return; }
      if (!r.ok) throw new Error("HTTP " + r.status);
      pairs = await r.json();
      const re = await fetch("/api/v1/fleet/events", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      if (re.ok) {
        const ans = await re.json();
        events = ans.events;
        $("events-max").textContent = String(ans.max);
      }
      $("login").hidden = true;
      $("fleet").hidden = false;
      $("forget").hidden = false;
      $("live").textContent = "updated " + new Date().toLocaleTimeString();
      render();
    } catch (e) {
      $("live").textContent = "reconnecting… (" + e.message + ")";
    }
    timer = setTimeout(load, PERIOD);
  }

  function text(p) {
    const parts = [p.name, p.severity, p.ready ? "ready" : "not ready"].concat(p.reasons, p.classes);
    for (const n of p.nodes) parts.push(n.url, n.name || "", n.status || "", n.version || "", n.error || "");
    return parts.join(" ").toLowerCase();
  }

  function nodeLine(n) {
    const line = el("span", "node");
    const a = el("a", "", n.name || n.url);
    // Node URLs are checked http(s) URLs in the aggregator's config.
    a.href = n.url.replace(/\/+$/, "") + "/";
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.title = "Open the node's page: " + n.url;
    line.appendChild(a);
    line.appendChild(document.createTextNode(" "));
    const st = n.reachable ? n.status : "unreachable";
    line.appendChild(el("span", "st-" + st, st));
    if (n.reachable) line.appendChild(el("span", "muted small", " · epoch " + n.epoch + " · " + n.version));
    return line;
  }

  function render() {
    const q = $("filter").value.trim().toLowerCase();
    const onlyBad = $("only-bad").checked;
    const counts = { critical: 0, warning: 0, info: 0, ok: 0 };
    const body = $("rows");
    const frag = document.createDocumentFragment();
    let shown = 0;
    for (const p of pairs) {
      counts[p.severity] = (counts[p.severity] || 0) + 1;
      if (onlyBad && p.ready) continue;
      if (q && !text(p).includes(q)) continue;
      shown++;
      const tr = el("tr", "sev-" + p.severity);
      const sev = el("td");
      sev.appendChild(el("span", "pill pill-" + p.severity, p.severity));
      tr.appendChild(sev);
      tr.appendChild(el("td", "name", p.name));
      const nodes = el("td");
      for (const n of p.nodes) nodes.appendChild(nodeLine(n));
      tr.appendChild(nodes);
      const rs = el("td");
      if (p.reasons.length) {
        const ul = el("ul", "reasons");
        for (const r of p.reasons) ul.appendChild(el("li", "", r));
        rs.appendChild(ul);
      } else {
        rs.appendChild(el("span", "muted", "ready"));
      }
      tr.appendChild(rs);
      const lc = el("td", "small");
      if (p.last_change) {
        lc.textContent = p.last_change.node + ": " + p.last_change.from + " → " + p.last_change.to +
          " (" + p.last_change.cause + "), " + new Date(p.last_change.at).toLocaleString();
      }
      tr.appendChild(lc);
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
    $("empty").hidden = shown > 0 || pairs.length === 0;
    const c = $("counts");
    c.replaceChildren();
    for (const s of ["critical", "warning", "info", "ok"]) {
      c.appendChild(el("span", "pill pill-" + s, counts[s] + " " + s));
    }
    c.appendChild(el("span", "muted small", shown + " of " + pairs.length + " shown"));
    renderEvents(q);
  }

  function renderEvents(q) {
    const frag = document.createDocumentFragment();
    let n = 0;
    for (const e of events) {
      if (n >= SHOWN_EVENTS) break;
      if (q && !(e.pair + " " + e.text + " " + e.severity).toLowerCase().includes(q)) continue;
      n++;
      const li = el("li", "event");
      li.appendChild(el("time", "muted small", new Date(e.at).toLocaleString()));
      li.lastChild.dateTime = e.at;
      li.appendChild(el("span", "pill pill-" + e.severity, e.kind === "change" ? "change" : e.severity));
      li.appendChild(el("span", "event-text", e.text));
      frag.appendChild(li);
    }
    $("events").replaceChildren(frag);
    $("events-empty").hidden = n > 0;
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("login-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      sessionStorage.setItem(KEY, $("token").value.trim());
      $("token").value = "";
      load();
    });
    $("forget").addEventListener("click", function () { sessionStorage.removeItem(KEY); showLogin(); });
    $("filter").addEventListener("input", render);
    $("only-bad").addEventListener("change", render);
    load();
  });
})();
