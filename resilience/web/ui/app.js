// resman Resilience Management page: this node and its peer side by side,
// live over Server-Sent Events, with Start / Stop services for each node,
// and the switchover and manual HA failover of this node.
// Plain JavaScript, no framework, no inline handlers (the page runs under a
// Content-Security-Policy of default-src 'self').
'use strict';

(function () {
  const PEER_POLL_MS = 3000;
  // This node is watched with a read of its status: every WATCH_MS while
  // its event stream is open, every DOWN_POLL_MS while it is not. A read
  // of its status that gets no answer within STATUS_TIMEOUT_MS, or any
  // call that cannot connect, is a silent read; SILENT_READS in a row (or
  // one while the stream is broken) mean this node does not answer. Other
  // background reads time out after READ_TIMEOUT_MS without counting (a
  // read of the peer may wait for the peer).
  const WATCH_MS = 5000;
  const DOWN_POLL_MS = 3000;
  // A switchover under way (on either node) is read every RUN_POLL_MS.
  const RUN_POLL_MS = 1000;
  const STATUS_TIMEOUT_MS = 4000;
  const READ_TIMEOUT_MS = 20000;
  const SILENT_READS = 2;
  const AUDIT_PAGE = 50;
  const TRANSITIONS = ['activating', 'deactivating'];
  // The commands of the dialog: their name, and the request they send.
  const ACTIONS = {
    start: { label: 'Start services', busy: 'starting services on ' },
    stop: { label: 'Stop services', busy: 'stopping services on ' },
    switchover: { label: 'Switchover', busy: 'switching over from ', method: 'POST', path: '/api/v1/switchover' },
    failover: { label: 'Manual HA failover', busy: 'starting a manual HA failover on ', method: 'POST', path: '/api/v1/failover' },
    unfailover: { label: 'Stop manual failover', busy: 'stopping the manual HA failover on ', method: 'DELETE', path: '/api/v1/failover' },
    replicate: { label: 'Replicate now', busy: 'running replication from ', method: 'POST', path: '/api/v1/replication/run' },
  };
  const DURATION_MS = { '10m': 10 * 60000, '30m': 30 * 60000, '1h': 3600000, '4h': 4 * 3600000 };
  const STATUS_TEXT = {
    active: 'Active', inactive: 'Inactive', activating: 'Activating…', deactivating: 'Deactivating…',
  };

  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  // A read-only viewer (api.users[].role: viewer, a wall screen) sees the
  // whole page with every write disabled; the node refuses its writes
  // anyway. Its background reads keep its session alive.
  const roleMeta = document.querySelector('meta[name="resman-role"]');
  const VIEWER = !!roleMeta && roleMeta.content === 'viewer';
  const READ_ONLY = 'read-only viewer';
  const $ = (id) => document.getElementById(id);
  // leaving: the admin logs out. A read refused meanwhile (the session is
  // gone) must not send the page to "your session has ended" instead of
  // the logout's own page.
  let leaving = false;
  if ($('logout-form')) $('logout-form').addEventListener('submit', () => { leaving = true; });

  const state = {
    local: null, // api.Status of this node
    peer: null, // api.Status of the peer, from /api/v1/peer/status
    peerErr: null, // {code, msg} of the last failed peer read
    peerLoaded: false,
    audit: [], // newest first
    auditIDs: new Set(),
    auditMore: false,
    busy: null, // text of the command under way from this page
    conn: 'connecting', // connecting, open, down
    lastStatus: {}, // node name -> status, for announcements
    localSeenAt: 0, // when this node last answered (ms)
    silentReads: 0, // reads of this node in a row that got no answer
    localDown: false, // this node does not answer: the page shows old data
    peerLast: null, // the last status of the peer read from this page
    peerLastAt: 0, // when it was read (ms)
  };

  // ---------- helpers ----------

  // el builds an element: el('td', {class: 'x', title: 't'}, child, 'text').
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function statusText(s) {
    return STATUS_TEXT[s] || (s ? s : 'Unknown');
  }

  function plainStatus(s) {
    return statusText(s).replace('…', '');
  }

  function roleText(r) {
    if (!r) return '';
    return r.charAt(0).toUpperCase() + r.slice(1);
  }

  // Every time on the page is in UTC and says so ("14:05:12 UTC"), as the
  // node's own texts (causes, readiness reasons) and its logs are: one
  // instant never shows in two zones.
  const pad = (n) => String(n).padStart(2, '0');
  function utcClock(d) {
    return pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + ' UTC';
  }
  function utcDate(d) {
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate());
  }
  const dateFmt = { format: (d) => utcDate(d) + ' ' + utcClock(d) };
  const clockFmt = { format: utcClock };
  function sameUTCDay(d) {
    return utcDate(d) === utcDate(new Date());
  }

  // inFuture says how far ahead a time is: "in 12 min".
  function inFuture(d) {
    const s = Math.round((d.getTime() - Date.now()) / 1000);
    if (s <= 0) return 'now';
    if (s < 120) return 'in ' + s + ' s';
    if (s < 3600) return 'in ' + Math.round(s / 60) + ' min';
    return 'in ' + Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function when(t) {
    if (!t || t.startsWith('0001-')) return null;
    const d = new Date(t);
    return isNaN(d) ? null : d;
  }

  function ago(d) {
    const s = Math.round((Date.now() - d.getTime()) / 1000);
    if (s < 5) return 'just now';
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  // timeEl shows a time; short shows only the time of day when it is today.
  function timeEl(t, withAgo, short) {
    const d = when(t);
    if (!d) return el('span', { class: 'muted' }, '—');
    const text = short && sameUTCDay(d) ? clockFmt.format(d) : dateFmt.format(d);
    return el('time', { datetime: d.toISOString(), title: d.toISOString() },
      text, withAgo ? el('span', { class: 'muted' }, ' (' + ago(d) + ')') : null);
  }

  // age says how long ago a time (ms) was, to the second: a page that
  // shows old data says how old.
  function age(at) {
    const s = Math.max(0, Math.round((Date.now() - at) / 1000));
    if (s < 120) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }

  function inTransition(st) {
    return !!st && TRANSITIONS.includes(st.status);
  }

  // ---------- API ----------

  class APIError extends Error {
    constructor(code, msg) {
      super(msg);
      this.code = code;
    }
  }

  // api calls the node's API with the session cookie; background calls do
  // not renew the session. A 401 means the session ended: back to login.
  // Background calls time out (a node whose host lost power answers
  // nothing and closes nothing); commands wait for the node.
  async function api(method, path, body, background) {
    const headers = { Accept: 'application/json' };
    if (background) headers['X-Resman-Background'] = '1';
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['X-CSRF-Token'] = csrf;
      init.body = JSON.stringify(body);
    }
    const isStatus = path === '/api/v1/status';
    const limit = isStatus ? STATUS_TIMEOUT_MS : READ_TIMEOUT_MS;
    let timer = null;
    if (background) {
      const ac = new AbortController();
      init.signal = ac.signal;
      timer = setTimeout(() => ac.abort(), limit);
    }
    // silent: no answer. A call that cannot connect says this node is
    // gone; a timeout says so only for a read of its status.
    const silent = (e) => {
      clearTimeout(timer);
      const timedOut = e.name === 'AbortError';
      if (!timedOut || isStatus) nodeSilent();
      return new APIError(0, timedOut ? 'this node did not answer within ' + limit / 1000 + ' s' :
        'this node cannot be reached (' + e.message + ')');
    };
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw silent(e);
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (e) {
      if (e.name === 'AbortError') throw silent(e);
      data = null;
    }
    clearTimeout(timer);
    nodeAnswered();
    if (resp.status === 401) {
      if (!leaving) window.location.assign('/?m=expired');
      throw new APIError(401, 'session ended');
    }
    if (!resp.ok) {
      throw new APIError(resp.status, (data && data.error) || ('HTTP ' + resp.status));
    }
    return data;
  }

  // ---------- the pair ----------

  function peerName() {
    if (state.peer) return state.peer.node;
    if (state.local && state.local.peer) return state.local.peer.name;
    return 'the peer';
  }

  // peerRole is the peer's role when it cannot be read: the other one.
  function peerRole() {
    if (!state.local) return '';
    return state.local.role === 'main' ? 'standby' : state.local.role === 'standby' ? 'main' : '';
  }

  // peerView says what is known of the peer: full (its own status),
  // unreachable (with the last summary this node has), none, loading.
  function peerView() {
    if (state.localDown) return { kind: 'stale' };
    const sum = state.local ? state.local.peer : null;
    if (state.peerErr && state.peerErr.code === 412) return { kind: 'none', msg: state.peerErr.msg };
    if (state.peerErr) return { kind: 'unreachable', msg: state.peerErr.msg, sum };
    if (state.peer) return { kind: 'full', st: state.peer };
    if (sum && !sum.reachable) return { kind: 'unreachable', msg: sum.error || 'unreachable', sum };
    return { kind: 'loading', sum };
  }

  function nodeOf(side) {
    if (side === 'local') return state.local;
    const pv = peerView();
    return pv.kind === 'full' ? pv.st : null;
  }

  function otherSide(side) {
    return side === 'local' ? 'peer' : 'local';
  }

  function nameOf(side) {
    if (side === 'local') return state.local ? state.local.node : 'this node';
    return peerName();
  }

  // transitionWhere names a node in transition, or null.
  function transitionWhere() {
    for (const side of ['local', 'peer']) {
      const st = nodeOf(side);
      if (inTransition(st)) return st.node;
    }
    return null;
  }

  // pairOrder sorts the nodes of the pair as the core names them: the Main
  // first, else by name. Both nodes' pages word the pair the same.
  function pairOrder(x, y) {
    if ((x.role === 'main') !== (y.role === 'main')) return x.role === 'main' ? -1 : 1;
    return x.node < y.node ? -1 : x.node > y.node ? 1 : 0;
  }

  function claimsActive(st) {
    return st.status === 'active' || st.status === 'activating';
  }

  // splitBrain is null unless both nodes claim Active; then it names the
  // node with the older claim (stale), which the core steps down: the
  // lower epoch, and on equal epochs the Standby (the Main keeps the role).
  function splitBrain() {
    const l = state.local;
    const p = nodeOf('peer');
    if (!l || !p || !claimsActive(l) || !claimsActive(p)) return null;
    const [a, b] = [l, p].sort(pairOrder);
    let stale = a;
    let keep = b;
    if (a.epoch > b.epoch || (a.epoch === b.epoch && a.role === 'main')) {
      stale = b;
      keep = a;
    }
    return { a, b, stale, keep, staleSide: stale === l ? 'local' : 'peer' };
  }

  // claimText compares the claims of a split brain, from the side of the
  // stale node or of the one that keeps the role.
  function claimText(sb, ofKeep) {
    const [x, y] = ofKeep ? [sb.keep, sb.stale] : [sb.stale, sb.keep];
    return 'epoch ' + x.epoch + ' against ' + y.epoch +
      (sb.stale.epoch === sb.keep.epoch ? ': on equal epochs the Main keeps the role' : '');
  }

  // pairHA is the pair's readiness: each node judges the facts of the
  // pair in the same words, and adds what only it sees. With both nodes
  // read, the pair is ready when both say so, with the reasons of both
  // (the Main's first, each once): the same on both nodes' pages.
  function pairHA(l, p) {
    if (!l || !l.ha) return null;
    if (!p || !p.ha) return { ready: !!l.ha.ready, reasons: l.ha.reasons || [] };
    const [a, b] = [l, p].sort(pairOrder);
    const reasons = [...(a.ha.reasons || [])];
    for (const r of b.ha.reasons || []) if (!reasons.includes(r)) reasons.push(r);
    return { ready: !!a.ha.ready && !!b.ha.ready, reasons };
  }

  // lastKnown is what the page last read of side, and when (ms): what a
  // page whose node does not answer can still show.
  function lastKnown(side) {
    if (side === 'local') return { st: state.local, at: state.localSeenAt };
    if (state.peerLast) return { st: state.peerLast, at: state.peerLastAt };
    const sum = state.local && state.local.peer;
    const d = sum && sum.reachable && sum.status ? when(sum.checked_at) : null;
    return { st: null, sum: d ? sum : null, at: d ? Math.min(d.getTime(), state.localSeenAt || Date.now()) : 0 };
  }

  // controlState says for each button of side whether it is enabled, and
  // why not.
  function controlState(side) {
    const st = nodeOf(side);
    const no = (why) => ({ start: why, stop: why });
    if (VIEWER) return no(READ_ONLY);
    if (state.localDown) return no('this node does not answer');
    if (state.conn !== 'open' && !state.local) return no('no connection to this node');
    if (state.conn === 'down') return no('no connection to this node');
    if (side === 'peer') {
      const pv = peerView();
      if (pv.kind === 'none') return no('no peer configured');
      if (pv.kind === 'unreachable') return no('peer unreachable');
      if (pv.kind === 'loading') return no('the peer\'s status is not known yet');
    }
    if (!st) return no('status not known yet');
    if (state.busy) return no('a command is in progress: ' + state.busy);
    const t = transitionWhere();
    if (t) return no('a transition is under way on ' + t);
    // A switchover that stopped this node is starting the other: the node
    // refuses a Start until it ends.
    if (st.status === 'inactive' && st.failover && st.failover.switchover) {
      return { start: 'switchover ' + st.failover.switchover + ' is starting ' + nameOf(otherSide(side)) + ': wait until it ends', stop: 'already Inactive' };
    }
    if (st.role === 'witness') return no('a witness has no services');
    return {
      start: st.status === 'active' ? 'already Active' : null,
      stop: st.status === 'inactive' ? 'already Inactive' : null,
    };
  }

  // haControlState says whether the switchover, manual HA failover and
  // stop manual failover of this node are possible, and why not. They run
  // on this node only: the page of the other node runs them there.
  function haControlState() {
    const l = state.local;
    let common = null;
    if (VIEWER) common = READ_ONLY;
    else if (state.localDown) common = 'this node does not answer';
    else if (state.conn === 'down' || (state.conn !== 'open' && !l)) common = 'no connection to this node';
    else if (!l) common = 'status not known yet';
    else if (state.busy) common = 'a command is in progress: ' + state.busy;
    if (common) return { switchover: common, failover: common, unfailover: common };
    const t = transitionWhere();
    const tr = t ? 'a transition is under way on ' + t : null;
    return { switchover: switchoverWhy(l, tr), failover: failoverWhy(l, tr), unfailover: tr };
  }

  function switchoverWhy(l, tr) {
    if (tr) return tr;
    if (l.status !== 'active') return 'this node is ' + statusText(l.status) + ': open ' + peerName() + '\'s page';
    const pv = peerView();
    if (pv.kind === 'none') return 'no peer configured';
    if (pv.kind === 'unreachable') return 'the peer is unreachable';
    if (pv.kind === 'loading') return 'the peer\'s status is not known yet';
    const sum = l.peer;
    if (sum && !sum.reachable) return 'the peer is unreachable from ' + l.node;
    if (pv.st.status !== 'inactive') return 'the peer is ' + statusText(pv.st.status) + ', not Inactive';
    if (major(l.version) !== major(pv.st.version)) {
      return 'different major versions: ' + l.node + ' runs ' + l.version + ', ' + pv.st.node + ' ' + pv.st.version;
    }
    return null;
  }

  // major is what the node compares for a switchover (resilience.Major):
  // the version up to its first dot.
  function major(v) {
    return (v || '').trim().split('.')[0];
  }

  function failoverWhy(l, tr) {
    if (l.failover && l.failover.manual) return 'a manual HA failover is under way';
    if (l.mode !== 'auto') return 'manual mode: use Stop services here and Start services on the peer';
    if (l.role !== 'main') return 'this node is the Standby: open ' + peerName() + '\'s page';
    if (tr) return tr;
    if (l.status !== 'active') return 'this node is ' + statusText(l.status);
    const sum = l.peer;
    if (!sum || !sum.reachable) return 'the peer is unreachable: nobody would take over';
    if (sum.status && sum.status !== 'inactive') return 'the peer is ' + statusText(sum.status) + ', not Inactive';
    if (!l.ha || !l.ha.ready) {
      const reasons = (l.ha && l.ha.reasons) || [];
      return 'HA is not ready: ' + (reasons[0] || 'no reason given');
    }
    return null;
  }

  function hasSendJobs() {
    return !!state.local && (state.local.replication || []).some((r) => r.direction === 'send');
  }

  // replicateWhy says why Replicate now is not possible, or null. The jobs
  // run from the sending side, the Active node (POST
  // /api/v1/replication/run refuses elsewhere).
  function replicateWhy() {
    const l = state.local;
    if (VIEWER) return READ_ONLY;
    if (state.localDown) return 'this node does not answer';
    if (state.conn === 'down' || (state.conn !== 'open' && !l)) return 'no connection to this node';
    if (!l) return 'status not known yet';
    if (state.busy) return 'a command is in progress: ' + state.busy;
    const t = transitionWhere();
    if (t) return 'a transition is under way on ' + t;
    if (!(l.replication || []).some((r) => !r.direction || r.direction === 'send')) {
      return 'this node sends no replication jobs';
    }
    if (l.status !== 'active') {
      return 'this node is ' + statusText(l.status) + ': replication runs from the Active node (' + peerName() + '\'s page when it is Active)';
    }
    if ((l.replication || []).some((r) => r.running)) return 'a replication run is under way';
    return null;
  }

  // renderReplicate shows Replicate now under this node's replication
  // table, when it has jobs, with why it is disabled.
  function renderReplicate() {
    const c = cards.local;
    const l = state.local;
    const jobs = !!l && (l.replication || []).length > 0;
    c.repl.hidden = !jobs || state.localDown;
    const why = replicateWhy();
    c.replBtn.disabled = !!why;
    c.replBtn.title = 'Run the replication jobs of ' + nameOf('local') + ' to ' + peerName() + ' now' + (why ? ': ' + why : '');
    c.replNote.textContent = why ? 'Replicate now: ' + why : '';
  }

  // replicateOutcome says what a Replicate now answer shows of the jobs
  // this node sends.
  function replicateOutcome(rows) {
    const sent = (rows || []).filter((r) => !r.direction || r.direction === 'send');
    if (!sent.length) return { text: 'done.', bad: false };
    const parts = sent.map((r) => r.name + ': ' + (r.running ? 'still running' : r.ok ? 'ok' : 'failed' + (r.error ? ' (' + r.error + ')' : '')));
    const bad = sent.some((r) => !r.running && !r.ok);
    const running = sent.some((r) => r.running);
    return { text: (bad ? 'some jobs failed: ' : running ? 'started, ' : 'done: ') + parts.join(', ') + '.', bad };
  }

  // localTime shows a time of day, with the date unless it is today.
  function localTime(d) {
    return sameUTCDay(d) ? clockFmt.format(d) : dateFmt.format(d);
  }

  function renderHA() {
    const hs = haControlState();
    const name = nameOf('local');
    const sw = $('btn-switchover');
    const fo = $('btn-failover');
    sw.disabled = !!hs.switchover;
    sw.title = 'Switchover from ' + name + ' to ' + peerName() + (hs.switchover ? ': ' + hs.switchover : '');
    fo.disabled = !!hs.failover;
    fo.title = 'Manual HA failover of ' + name + (hs.failover ? ': ' + hs.failover : '');
    const whys = [];
    if (hs.switchover) whys.push('Switchover: ' + hs.switchover);
    if (hs.failover) whys.push('Manual HA failover: ' + hs.failover);
    $('ha-note').textContent = whys.join(' · ');

    // The manual HA failover under way, on this node's card.
    const c = cards.local;
    const l = state.local;
    const on = !!l && !!l.failover && l.failover.manual;
    c.fo.hidden = !on;
    const until = on ? when(l.failover.until) : null;
    c.foText.textContent = on ? 'Manual HA failover until ' + (until ? localTime(until) : 'it is stopped') : '';
    const why = on ? hs.unfailover : 'no manual HA failover';
    c.foStop.disabled = !!why;
    c.foStop.title = 'Stop the manual HA failover of ' + name + (why ? ': ' + why : '');
    c.foNote.textContent = on && why ? 'Stop manual failover: ' + why : '';
  }

  // ---------- rendering ----------

  const cards = {};
  const narrow = window.matchMedia('(max-width: 520px)');
  narrow.addEventListener('change', () => {
    for (const c of Object.values(cards)) c.more.open = !narrow.matches;
  });

  // buildCard makes the parts of a node card that stay (the buttons keep
  // their focus across updates).
  function buildCard(side) {
    const root = $('node-' + side);
    const c = {
      root,
      title: el('h2', { id: 'node-' + side + '-title', class: 'node-name' }),
      tags: el('div', { class: 'tags' }),
      band: el('div', { class: 'status-band', role: 'group', 'aria-label': 'Status' }),
      icon: el('span', { class: 'status-icon', 'aria-hidden': 'true' }),
      statusText: el('span', { class: 'status-text' }),
      statusSub: el('span', { class: 'status-sub' }),
      start: el('button', { type: 'button', class: 'btn btn-primary btn-start', 'data-side': side, 'data-action': 'start' }, 'Start services'),
      stop: el('button', { type: 'button', class: 'btn btn-danger btn-stop', 'data-side': side, 'data-action': 'stop' }, 'Stop services'),
      note: el('p', { class: 'control-note', id: 'node-' + side + '-note' }),
      held: el('p', { class: 'held-banner', role: 'status', hidden: true }),
      facts: el('dl', { class: 'facts' }),
      details: el('div', { class: 'details' }),
    };
    c.band.append(c.icon, el('span', { class: 'status-words' }, c.statusText, c.statusSub));
    const controls = el('div', { class: 'controls', role: 'group', 'aria-labelledby': 'node-' + side + '-title' },
      el('div', { class: 'buttons' }, c.start, c.stop), c.note);
    c.start.setAttribute('aria-describedby', c.note.id);
    c.stop.setAttribute('aria-describedby', c.note.id);
    root.append(el('header', { class: 'card-head' }, c.title, c.tags), c.band, c.held);
    if (side === 'local') {
      c.foText = el('strong', { id: 'failover-text' });
      c.foStop = el('button', { type: 'button', class: 'btn btn-secondary', id: 'btn-failover-stop' }, 'Stop manual failover');
      c.foNote = el('span', { class: 'control-note', id: 'failover-note' });
      c.foStop.setAttribute('aria-describedby', 'failover-note');
      c.fo = el('div', { class: 'failover-banner', id: 'failover-banner', role: 'status', hidden: true }, c.foText, c.foStop, c.foNote);
      c.foStop.addEventListener('click', () => openConfirm('local', 'unfailover', c.foStop));
      root.append(c.fo);
    }
    // The facts and tables of a node fold on a phone, so that both nodes'
    // status and controls fit on about one screen; open on wider screens.
    c.more = el('details', { class: 'more', open: !narrow.matches },
      el('summary', { class: 'more-summary' }, 'Details: epoch, health, services, registrations, replication'),
      c.facts, c.details);
    root.append(controls, c.more);
    if (side === 'local') {
      c.replBtn = el('button', { type: 'button', class: 'btn btn-secondary', id: 'btn-replicate', 'aria-describedby': 'replicate-note' }, 'Replicate now…');
      c.replNote = el('span', { class: 'control-note', id: 'replicate-note' });
      c.replOut = el('p', { class: 'replicate-outcome', id: 'replicate-outcome', role: 'status', 'aria-live': 'polite' });
      c.repl = el('div', { class: 'replicate', id: 'replicate', hidden: true }, c.replBtn, c.replNote, c.replOut);
      c.details.after(c.repl);
      c.replBtn.addEventListener('click', () => openConfirm('local', 'replicate', c.replBtn));
    }
    c.start.addEventListener('click', () => openConfirm(side, 'start', c.start));
    c.stop.addEventListener('click', () => openConfirm(side, 'stop', c.stop));
    cards[side] = c;
  }

  function fact(dt, ...dd) {
    return [el('dt', {}, dt), el('dd', {}, ...dd)];
  }

  function yesNo(ok, yes, no) {
    return el('span', { class: 'pill ' + (ok ? 'pill-ok' : 'pill-bad') }, ok ? yes : no);
  }

  function tableOrNone(caption, head, rows, none) {
    const h3 = el('h3', {}, caption);
    if (!rows.length) return [h3, el('p', { class: 'muted none' }, none)];
    labelCells(rows, head);
    return [h3, el('div', { class: 'table-wrap' },
      el('table', { class: 'data' },
        el('thead', {}, el('tr', {}, head.map((x) => el('th', { scope: 'col' }, x)))),
        el('tbody', {}, rows)))];
  }

  // labelCells names each cell after its column: narrow screens show the
  // rows as cards, each value with its name.
  function labelCells(rows, head) {
    for (const tr of rows) [...tr.children].forEach((cell, i) => cell.setAttribute('data-label', head[i]));
  }

  function serviceRows(st) {
    return (st.services || []).map((s) => el('tr', {},
      el('th', { scope: 'row' }, s.name),
      el('td', {}, el('span', { class: 'state state-' + s.state }, s.state)),
      el('td', {}, !s.healthy && s.state === 'stopped' ?
        el('span', { class: 'muted', title: 'a stopped service is not checked as healthy' }, 'n/a (stopped)') :
        yesNo(s.healthy, 'healthy', 'unhealthy')),
      el('td', {}, s.critical ? 'critical' : el('span', { class: 'muted' }, 'no')),
      el('td', { class: 'err-cell' }, s.error || el('span', { class: 'muted' }, '—'))));
  }

  function xdsRows(st) {
    return (st.xds || []).map((r) => el('tr', {},
      el('th', { scope: 'row' }, r.mds),
      el('td', {}, yesNo(r.registered, 'registered', 'not registered')),
      el('td', {}, yesNo(r.reachable, 'reachable', 'unreachable')),
      el('td', {}, r.status_code ? String(r.status_code) : el('span', { class: 'muted' }, '—')),
      el('td', { class: 'nowrap' }, r.expires_at ? timeEl(r.expires_at, false, true) : el('span', { class: 'muted' }, '—')),
      el('td', { class: 'err-cell' }, r.error || el('span', { class: 'muted' }, '—'))));
  }

  // replicationRows lists the jobs as the node answers for them now: the
  // Active node for what it sends, the other for what it receives (the
  // side readiness counts). A row of the other direction is the node's
  // past (received while Inactive, sent while Active): shown muted when
  // there is one, never as a failure.
  function replicationRows(st) {
    const sending = st.status === 'active' || st.status === 'activating';
    const dirName = (d) => (d === 'send' ? 'sent to the peer' : d === 'receive' ? 'received from the peer' : '');
    return (st.replication || []).filter((r) => {
      const current = !r.direction || (r.direction === 'send') === sending;
      return current || r.last_success;
    }).map((r) => {
      const current = !r.direction || (r.direction === 'send') === sending;
      if (!current) {
        return el('tr', { class: 'muted replication-past' },
          el('th', { scope: 'row' }, r.name),
          el('td', {}, dirName(r.direction)),
          el('td', {}, r.last_run ? timeEl(r.last_run, true) : '—'),
          el('td', {}, timeEl(r.last_success, true)),
          el('td', {}, 'not this node\'s side now'),
          el('td', {}, el('span', { class: 'muted' }, '—')));
      }
      return el('tr', {},
        el('th', { scope: 'row' }, r.name),
        el('td', {}, dirName(r.direction)),
        el('td', { class: 'repl-attempt' }, r.running ? 'running now' : when(r.last_run) ? timeEl(r.last_run, true) : el('span', { class: 'muted' }, 'never')),
        el('td', { class: 'repl-success' }, when(r.last_success) ? timeEl(r.last_success, true) : el('span', { class: 'muted' }, 'never')),
        el('td', {}, r.stale ? yesNo(false, '', 'stale') : yesNo(r.ok, 'ok', 'failed')),
        el('td', { class: 'err-cell' }, r.error || el('span', { class: 'muted' }, '—')));
    });
  }

  function setBand(c, kind, text, sub) {
    c.band.className = 'status-band status-' + kind;
    c.statusText.textContent = text;
    c.statusSub.textContent = sub || '';
  }

  // staleBand shows the last known status of a node and its age, in grey:
  // this node does not answer, nothing shown is current.
  function staleBand(c, status, at, sub) {
    c.band.className = 'status-band status-stale';
    c.statusText.replaceChildren('Last known: ', el('span', { class: 'known-status' }, plainStatus(status)),
      ', ' + age(at) + ' ago');
    c.statusSub.textContent = sub;
  }

  function renderCard(side) {
    const c = cards[side];
    const pv = side === 'peer' ? peerView() : null;
    const stale = state.localDown;
    const known = stale ? lastKnown(side) : null;
    const st = stale ? known.st : nodeOf(side);
    c.title.textContent = nameOf(side);
    const role = st ? st.role : side === 'peer' ? peerRole() : '';
    c.tags.replaceChildren(...[
      el('span', { class: 'tag tag-where' }, side === 'local' ? 'This node' : 'Peer'),
      role ? el('span', { class: 'tag tag-role' }, roleText(role)) : null].filter(Boolean));
    c.root.classList.toggle('stale', stale || (side === 'local' && state.conn === 'down'));

    c.facts.replaceChildren();
    c.details.replaceChildren();
    if (st) {
      const since = when(st.since);
      if (stale) {
        staleBand(c, st.status, known.at, 'epoch ' + st.epoch + ' · as read at ' + localTime(new Date(known.at)) +
          (side === 'local' ? ': ' + nameOf('local') + ' does not answer' : ' through ' + nameOf('local')));
      } else {
        setBand(c, st.status, statusText(st.status),
          'epoch ' + st.epoch + (since ? ' · since ' + dateFmt.format(since) : ''));
      }
      c.facts.append(...fact('Epoch', String(st.epoch)),
        ...fact('Since', timeEl(st.since, true)),
        ...fact('Version', st.version || '—'),
        ...fact('Mode', st.mode || '—'),
        ...fact('Health', yesNo(st.healthy, 'healthy', 'unhealthy')),
        ...fact('HA readiness', haEl(st.ha)),
        ...fact(side === 'local' ? 'Sees its peer' : 'Sees this node', peerSeenEl(st.peer, st.mode)));
      if (st.last_change) {
        const lc = st.last_change;
        c.facts.append(...fact('Last change', el('div', {}, plainStatus(lc.from) + ' → ' + plainStatus(lc.to) +
          (lc.cause ? ' (' + lc.cause + ')' : '')), el('div', { class: 'small' }, timeEl(lc.at, true))));
      }
      c.details.append(
        ...tableOrNone('Services', ['Service', 'State', 'Health', 'Critical', 'Last error'], serviceRows(st), 'No services configured.'),
        ...tableOrNone('MDS registrations', ['MDS', 'Registration', 'Reachability', 'Last code', 'Expires', 'Error'], xdsRows(st), 'No MDS registration configured.'),
        ...tableOrNone('Replication', ['Job', 'Direction', 'Last attempt', 'Last success', 'Result', 'Error'], replicationRows(st), 'No replication configured.'));
    } else if (stale) {
      if (known.sum) {
        staleBand(c, known.sum.status, known.at, 'epoch ' + known.sum.epoch + ', as ' + nameOf('local') + ' saw it');
      } else {
        setBand(c, 'stale', 'Not known', 'not read from this page before ' + nameOf('local') + ' stopped answering');
      }
      c.details.append(el('p', { class: 'muted none' }, 'Nothing more of ' + nameOf(side) + ' is known here: ' +
        nameOf('local') + ' does not answer.'));
    } else if (side === 'peer' && pv.kind === 'unreachable') {
      const sum = pv.sum;
      setBand(c, 'unreachable', 'Unreachable', 'cannot be read from ' + nameOf('local'));
      c.facts.append(...fact('Error', el('span', { class: 'err-text' }, pv.msg)));
      c.facts.append(...fact('Last answer', lastAnswerEl(sum)));
      if (sum) {
        const checked = when(sum.checked_at);
        c.facts.append(...fact('Checked', checked ? timeEl(sum.checked_at, true) : '—'));
      }
      c.details.append(el('p', { class: 'muted none' }, 'Services, registrations and replication of ' + peerName() +
        ' are not available while it cannot be reached. Its controls are disabled.'));
    } else if (side === 'peer' && pv.kind === 'none') {
      setBand(c, 'none', 'No peer', '');
      c.details.append(el('p', { class: 'muted none' }, pv.msg));
    } else {
      setBand(c, 'loading', 'Loading…', '');
    }

    const held = !stale && heldByAdmin(side);
    c.held.hidden = !held;
    c.held.textContent = held ? 'Held by an admin\'s Stop: Start services to release. ' + nameOf(side) +
      ' does not go Active by itself, even if ' + nameOf(otherSide(side)) + ' fails.' : '';

    const cs = controlState(side);
    setButton(c.start, cs.start, side, 'start');
    setButton(c.stop, cs.stop, side, 'stop');
    const whys = [...new Set([cs.start, cs.stop].filter(Boolean))];
    c.note.textContent = whys.length === 2 ? 'Start: ' + whys[0] + ' · Stop: ' + whys[1] :
      whys.length === 1 && cs.start && cs.stop ? whys[0] :
        whys.length === 1 ? (cs.start ? 'Start services: ' : 'Stop services: ') + whys[0] : '';
  }

  // heldByAdmin: an admin's Stop holds the node of side Inactive (auto
  // mode); the peer's hold is also in this node's view of it.
  function heldByAdmin(side) {
    const st = nodeOf(side);
    if (st && st.failover && st.failover.held_by_admin) return true;
    if (side === 'peer' && state.local && state.local.peer && !st) return !!state.local.peer.held_by_admin;
    return false;
  }

  function setButton(b, why, side, action) {
    b.disabled = !!why;
    const label = (action === 'start' ? 'Start services on ' : 'Stop services on ') + nameOf(side);
    b.title = why ? label + ': ' + why : label;
  }

  function haEl(ha) {
    if (!ha) return '—';
    const reasons = ha.reasons || [];
    return el('div', {}, yesNo(ha.ready, 'ready', 'not ready'),
      reasons.length ? el('ul', { class: 'reasons' }, reasons.map((r) => el('li', {}, r))) : null);
  }

  // lastAnswerEl says when the unreachable peer last answered and what it
  // said: read by this page, else as this node last saw it.
  function lastAnswerEl(sum) {
    if (state.peerLast) {
      return el('span', { class: 'freshness' }, plainStatus(state.peerLast.status) + ', epoch ' + state.peerLast.epoch +
        ' · last answer ' + ago(new Date(state.peerLastAt)) + ' (read by this page)');
    }
    if (sum && sum.status) {
      return el('span', { class: 'freshness' }, plainStatus(sum.status) + ', epoch ' + sum.epoch + ' · as ' + nameOf('local') + ' last saw it');
    }
    return el('span', { class: 'freshness muted' }, 'no answer since this page was opened');
  }

  // peerSeenEl is what a node sees of the other, and where its view comes
  // from: in auto mode over gossip (live while reachable: checked_at is
  // then the last gossip that changed the view, not its age), in manual
  // mode from polls (checked_at is the last answer).
  function peerSeenEl(p, mode) {
    if (!p) return el('span', { class: 'muted' }, 'no peer configured');
    const checked = when(p.checked_at);
    if (!p.reachable) {
      return el('div', {}, el('span', { class: 'pill pill-bad' }, p.name + ' unreachable'),
        p.error ? el('div', { class: 'err-text small' }, p.error) : null,
        checked ? el('div', { class: 'muted small freshness' }, (mode === 'auto' ? 'no gossip; last checked ' : 'no answer; last checked ') + ago(checked)) : null);
    }
    const from = p.via === 'second path' ? 'gossip lost it; answers over the second path, live' :
      mode === 'auto' ? 'over gossip, live' : checked ? 'last answer ' + ago(checked) : 'polled';
    return el('div', {}, el('span', { class: 'pill pill-ok' }, p.name + ' reachable'),
      ' ' + statusText(p.status) + ', epoch ' + p.epoch + (p.calls != null ? ', ' + p.calls + (p.calls === 1 ? ' call' : ' calls') + ' in progress' : ''),
      el('div', { class: 'muted small freshness' }, from));
  }

  function renderSummary() {
    const l = state.local;
    const line = $('summary');
    const reasonsEl = $('summary-reasons');
    const go = $('summary-go');
    $('conn-text').textContent = state.localDown ?
      (l ? l.node : 'This node') + ' does not answer — trying again every ' + DOWN_POLL_MS / 1000 + ' s…' :
      'Connection to ' + (l ? l.node : 'this node') + ' lost — reconnecting…';

    if (state.localDown) {
      // Nothing shown is current: no alert from old data, no readiness;
      // how old it is, and where the truth is.
      setAlert('', null);
      line.className = 'summary-line summary-stale';
      line.textContent = 'This node' + (l ? ' (' + l.node + ')' : '') + ' does not answer: ' +
        (state.localSeenAt ? 'what is shown is ' + age(state.localSeenAt) + ' old.' : 'nothing could be read from it.');
      reasonsEl.replaceChildren();
      reasonsEl.hidden = true;
      $('pending').hidden = true;
      const pn = l && l.peer ? l.peer.name : null;
      go.hidden = !pn;
      go.replaceChildren();
      if (pn) {
        // A link when this node knows the peer's address (peer.api), and
        // only to an http(s) URL: the address this node uses, which the
        // browser may or may not reach.
        let url = null;
        try {
          const u = new URL(l.peer.url || '');
          if (u.protocol === 'http:' || u.protocol === 'https:') url = u.origin + '/';
        } catch (e) { /* no URL: name the peer only */ }
        const what = 'Open ' + pn + '\'s own page';
        if (url) {
          const a = document.createElement('a');
          a.href = url;
          a.textContent = what;
          go.append(a, ' (' + url + '): it answers for itself and sees the pair from there.');
        } else {
          go.textContent = what + ': it answers for itself and sees the pair from there.';
        }
      }
      document.title = (l ? l.node : 'This node') + ' does not answer · Resilience Management · resman';
      return;
    }
    go.hidden = true;
    go.replaceChildren();

    const p = nodeOf('peer');
    const pv = peerView();
    const ha = pairHA(l, p);
    const reasons = ha ? ha.reasons : [];
    const sb = splitBrain();
    const bothInactive = !!l && !!p && l.status === 'inactive' && p.status === 'inactive';
    const noActive = bothInactive || reasons.some((r) => r.startsWith('no node is Active'));
    const split = !!sb || reasons.some((r) => r.startsWith('split brain'));

    if (sb) {
      setAlert('Two Active nodes: ' + sb.a.node + ' (epoch ' + sb.a.epoch + ') and ' + sb.b.node + ' (epoch ' + sb.b.epoch +
        ') both run the telephony. ' + sb.stale.node + ' holds the older claim (' + claimText(sb) + '): stop services there; ' +
        sb.keep.node + ' keeps the role.', sb.staleSide);
    } else if (bothInactive) {
      const [a, b] = [l, p].sort(pairOrder);
      setAlert('No Active node: neither ' + a.node + ' nor ' + b.node + ' runs the telephony. Start services on one of them.', null);
    } else if (l && pv.kind === 'unreachable' && l.status === 'inactive') {
      setAlert(l.node + ' is Inactive and ' + peerName() + ' cannot be reached: the telephony may be down.', null);
    } else {
      setAlert('', null);
    }

    // The pair, worded the same whichever node serves the page: the Main
    // first, no "this node" (the cards say which one it is).
    const parts = [];
    if (noActive) parts.push('No node is Active');
    else if (split) parts.push('Two Active nodes');
    for (const st of [l, p].filter(Boolean).sort(pairOrder)) {
      parts.push(st.node + ' (' + roleText(st.role) + ') is ' + statusText(st.status));
    }
    if (l && !p) {
      if (pv.kind === 'unreachable') parts.push(peerName() + ' cannot be reached from ' + l.node);
      else if (pv.kind === 'loading') parts.push(peerName() + ' is being read');
    }
    if (ha) parts.push(ha.ready ? 'HA ready' : 'HA not ready');
    line.textContent = parts.length ? parts.join(' · ') : 'Loading the status of the pair…';
    line.className = 'summary-line' + (!ha ? '' : noActive || split ? ' summary-bad' : ha.ready ? ' summary-ok' : ' summary-warn');
    reasonsEl.replaceChildren(...reasons.map((r) => el('li', {}, r)));
    reasonsEl.hidden = !reasons.length;

    renderPending();

    // Main on the left, Standby on the right, whichever this node is.
    $('nodes').classList.toggle('local-right', !!l && l.role === 'standby');
    $('audit-node').textContent = l ? 'of ' + l.node + ' (this node)' : '';
    document.title = (l ? l.node + ' ' + statusText(l.status) + ' · ' : '') + 'Resilience Management · resman';
  }

  // pendingLines are the transitions the pair waits for, from both
  // nodes' statuses: a manual HA failover's hold (from this node's
  // failover, or from its view of the peer: peer.failover_until), a
  // switchover's hold, a failback counting down, a boot grace.
  function pendingLines() {
    const out = [];
    const seen = new Set();
    const add = (node, until) => {
      const d = when(until);
      if (!d || seen.has(node)) return;
      seen.add(node);
      out.push('manual failover: ' + node + ' held until ' + localTime(d) + ' (' + inFuture(d) + ')');
    };
    const l = state.local;
    if (!l) return out;
    const p = nodeOf('peer');
    if (l.failover && l.failover.manual) add(l.node, l.failover.until);
    if (p && p.failover && p.failover.manual) add(p.node, p.failover.until);
    if (l.peer && l.peer.failover_until) add(l.peer.name, l.peer.failover_until);
    for (const st of [l, p].filter(Boolean)) {
      if (st.failover && st.failover.switchover) out.push('switchover ' + st.failover.switchover + ': ' + st.node + ' held Inactive until it ends');
      const fb = st.failover && when(st.failover.failback_at);
      if (fb) {
        const to = st.peer && st.peer.name ? st.peer.name : 'the Main';
        out.push('failback: ' + st.node + ' hands the Active role back to ' + to + ' at ' + localTime(fb) + ' (' + inFuture(fb) + '), if it stays up and ready');
      }
      const bg = st.failover && when(st.failover.boot_grace_until);
      if (bg) out.push('boot grace: ' + st.node + ' does not take over for a lost peer before ' + localTime(bg) + ' (' + inFuture(bg) + ')');
    }
    return out;
  }

  // ---------- switchover progress ----------

  // switchoverRun is the switchover to show: the one running on either
  // node, else the one that ended last (a node keeps it for a while), with
  // the status of the node that runs it (its replication shows the sync).
  function switchoverRun() {
    let best = null;
    for (const st of [state.local, nodeOf('peer')].filter(Boolean)) {
      const run = st.switchover_run;
      if (!run) continue;
      const key = run.ended ? Date.parse(run.ended) : Infinity;
      if (!best || key > best.key) best = { run, st, key };
    }
    return best;
  }

  // switchoverRunning: a switchover runs on either node, or this page's
  // own request for one is under way (its steps may not show yet).
  function switchoverRunning() {
    const b = switchoverRun();
    return (!!b && !b.run.ended) || (submitting && !!pending && pending.action === 'switchover');
  }

  // syncProgressEl shows how far the final sync has come, per job.
  function syncProgressEl(st) {
    const jobs = (st.replication || []).filter((r) => r.running && r.direction === 'send');
    return jobs.map((r) => {
      const p = r.progress;
      if (!p) return el('span', { class: 'step-detail' }, ' ' + r.name + ': running');
      if (p.phase !== 'uploading') {
        return el('span', { class: 'step-detail' }, ' ' + r.name + ': ' + p.phase + ' (' + p.files + ' files)');
      }
      return el('span', { class: 'step-detail' }, ' ' + r.name + ': ' + p.sent + ' of ' + p.to_send + ' files sent',
        el('progress', { class: 'sync-progress', max: String(Math.max(1, p.to_send)), value: String(p.sent) }));
    });
  }

  // renderSwitchoverRun shows the switchover's steps in the summary, and
  // in the dialog while this page's own switchover request runs.
  function renderSwitchoverRun() {
    const box = $('switchover-run');
    const b = switchoverRun();
    box.hidden = !b;
    const inDialog = $('confirm-steps');
    inDialog.hidden = !(b && !b.run.ended && dialog.open && pending && pending.action === 'switchover' && submitting);
    if (!b) return;
    const run = b.run;
    const title = 'Switchover ' + run.id + ': ' + b.st.node + ' to ' + run.to + ' (' + run.who + ') — ' +
      (run.ended ? run.outcome + ' at ' + localTime(when(run.ended)) : 'running since ' + localTime(when(run.started)));
    $('switchover-run-title').textContent = title;
    $('switchover-steps').replaceChildren(...stepItems(b));
    if (!inDialog.hidden) inDialog.replaceChildren(...stepItems(b));
  }

  function stepItems(b) {
    return (b.run.steps || []).map((s) => {
      const took = s.started && s.ended ? ' ' + ((Date.parse(s.ended) - Date.parse(s.started)) / 1000).toFixed(1) + ' s' : '';
      const li = el('li', { class: 'step-' + s.state, 'data-step': s.name },
        el('span', { class: 'step-state' }, s.state), ' ' + s.name + took,
        s.detail ? el('span', { class: 'step-detail' }, ': ' + s.detail) : '');
      if (s.name === 'final sync' && s.state === 'running') li.append(...syncProgressEl(b.st));
      return li;
    });
  }

  function renderPending() {
    const box = $('pending');
    const lines = pendingLines();
    box.replaceChildren(...lines.map((t) => el('li', {}, t)));
    box.hidden = !lines.length;
  }

  // setAlert shows the pair's alert (none when text is empty), with the
  // button that stops the stale node of a split brain on stopSide.
  function setAlert(text, stopSide) {
    const alert = $('pair-alert');
    const t = $('pair-alert-text');
    if (t.textContent !== text) t.textContent = text;
    alert.hidden = !text;
    const b = $('split-stop');
    b.hidden = !stopSide;
    if (!stopSide) return;
    const name = nameOf(stopSide);
    b.dataset.side = stopSide;
    b.textContent = 'Stop services on ' + name;
    const why = controlState(stopSide).stop;
    b.disabled = !!why;
    b.title = 'Stop services on ' + name + ', which holds the older claim' + (why ? ': ' + why : '');
  }

  function announceChanges() {
    const msgs = [];
    for (const st of [state.local, nodeOf('peer')]) {
      if (!st) continue;
      const before = state.lastStatus[st.node];
      if (before && before !== st.status) msgs.push(st.node + ' is now ' + statusText(st.status) + '.');
      state.lastStatus[st.node] = st.status;
    }
    if (msgs.length) $('announce').textContent = msgs.join(' ');
  }

  function render() {
    announceChanges();
    renderSummary();
    renderCard('local');
    renderCard('peer');
    renderHA();
    renderReplicate();
    renderSwitchoverRun();
    if (dialog.open) updateConfirm();
  }

  // ---------- audit ----------

  function outcomeEl(o) {
    const cls = o === 'ok' ? 'pill-ok' : o === 'refused' ? 'pill-warn' : 'pill-bad';
    return el('span', { class: 'pill ' + cls }, o);
  }

  function auditRow(e) {
    const detail = [];
    if (e.cause) detail.push(e.cause);
    if (e.to && e.from !== e.to) detail.push((e.from ? plainStatus(e.from) + ' → ' : '→ ') + plainStatus(e.to));
    detail.push('epoch ' + e.epoch);
    if (e.detail) detail.push(e.detail);
    return el('tr', { 'data-id': String(e.id) },
      el('td', { class: 'nowrap' }, timeEl(e.time, false)),
      el('td', {}, e.who),
      el('td', {}, e.action),
      el('td', {}, e.reason || el('span', { class: 'muted' }, '—')),
      el('td', {}, outcomeEl(e.outcome)),
      el('td', { class: 'detail-cell' }, detail.join(' · ')));
  }

  // auditKind sorts an entry: routine (a replication run that went
  // well, the bulk of the log), admin (a person or tool through the API or
  // the page) or auto (what resman decided by itself).
  function auditKind(e) {
    if (e.action === 'replication' && e.outcome === 'ok') return 'routine';
    if (/^(web|api):/.test(e.who) || e.who === 'web' || e.who === 'api') return 'admin';
    return 'auto';
  }

  function auditShown(e) {
    const kind = auditKind(e);
    if (!$('audit-f-' + kind).checked) return false;
    if ($('audit-f-failed').checked && e.outcome === 'ok') return false;
    return true;
  }

  function renderAudit() {
    const body = $('audit-body');
    const shown = state.audit.filter(auditShown);
    const routine = state.audit.filter((e) => auditKind(e) === 'routine').length;
    const folded = $('audit-f-routine').checked ? 0 : routine;
    $('audit-folded').textContent = folded ? folded + ' routine ' + (folded === 1 ? 'entry' : 'entries') +
      ' (replication runs that went well) folded: tick "Routine" to show them.' : '';
    if (!state.audit.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: '6', class: 'muted' }, 'No entries yet.')));
    } else if (!shown.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: '6', class: 'muted' }, 'No entry matches the filters among the ' +
        state.audit.length + ' loaded.')));
    } else {
      const rows = shown.map(auditRow);
      labelCells(rows, ['When', 'Who', 'What', 'Why', 'Outcome', 'Detail']);
      body.replaceChildren(...rows);
    }
    $('audit-more').hidden = !state.auditMore;
  }

  for (const f of ['admin', 'auto', 'routine', 'failed']) $('audit-f-' + f).addEventListener('change', renderAudit);

  function addAudit(entries, atEnd) {
    for (const e of entries) {
      if (state.auditIDs.has(e.id)) continue;
      state.auditIDs.add(e.id);
      if (atEnd) state.audit.push(e);
      else state.audit.unshift(e);
    }
    state.audit.sort((a, b) => b.id - a.id);
  }

  async function loadAudit() {
    try {
      const entries = await api('GET', '/api/v1/audit?limit=' + AUDIT_PAGE, undefined, true);
      state.audit = [];
      state.auditIDs = new Set();
      addAudit(entries, true);
      state.auditMore = entries.length === AUDIT_PAGE;
      renderAudit();
    } catch (e) {
      if (e.code !== 401) toast('Cannot read the audit log: ' + e.message, true);
    }
  }

  async function loadOlderAudit() {
    const last = state.audit[state.audit.length - 1];
    if (!last) return;
    try {
      const entries = await api('GET', '/api/v1/audit?limit=' + AUDIT_PAGE + '&before=' + last.id);
      addAudit(entries, true);
      state.auditMore = entries.length === AUDIT_PAGE;
      renderAudit();
    } catch (e) {
      if (e.code !== 401) toast('Cannot read the audit log: ' + e.message, true);
    }
  }

  // ---------- status, peer, events ----------

  async function loadStatus() {
    try {
      state.local = await api('GET', '/api/v1/status', undefined, true);
      render();
    } catch (e) {
      if (e.code !== 401) toast('Cannot read the status of this node: ' + e.message, true);
    }
  }

  let peerTimer = null;
  let peerInFlight = false;

  async function loadPeer() {
    if (peerInFlight) return;
    peerInFlight = true;
    try {
      state.peer = await api('GET', '/api/v1/peer/status', undefined, true);
      state.peerErr = null;
      state.peerLast = state.peer;
      state.peerLastAt = Date.now();
    } catch (e) {
      // No answer from this node says nothing of the peer.
      if (e.code === 401 || e.code === 0) return;
      state.peer = null;
      state.peerErr = { code: e.code, msg: e.message };
    } finally {
      peerInFlight = false;
      state.peerLoaded = true;
    }
    render();
  }

  function schedulePeer(now) {
    clearTimeout(peerTimer);
    peerTimer = setTimeout(async () => {
      await loadPeer();
      schedulePeer(false);
    }, now ? 0 : switchoverRunning() ? RUN_POLL_MS : PEER_POLL_MS);
  }

  // onLocalStatus takes a status event: the peer summary it carries makes
  // the peer's side refresh at once when it disagrees with what is shown.
  function onLocalStatus(st) {
    state.local = st;
    state.localSeenAt = Date.now();
    const sum = st.peer;
    if (sum) {
      const p = state.peer;
      const differs = !p ? sum.reachable : (!sum.reachable || sum.status !== p.status || sum.epoch !== p.epoch);
      if (differs || (state.peerErr && sum.reachable)) schedulePeer(true);
    }
    render();
  }

  let es = null;
  let everOpen = false;

  function setConn(c) {
    state.conn = c;
    $('conn-banner').hidden = c !== 'down';
    render();
  }

  // nodeAnswered: a call to this node got an answer (any answer).
  function nodeAnswered() {
    state.localSeenAt = Date.now();
    state.silentReads = 0;
    if (state.localDown) {
      state.localDown = false;
      render();
    }
  }

  // nodeSilent: a call to this node got none. Once is enough while the
  // event stream is broken; with the stream open (it can stay open on a
  // host that lost power), SILENT_READS in a row, read at once.
  function nodeSilent() {
    state.silentReads++;
    if (state.localDown) return;
    if (state.conn === 'down' || state.silentReads >= SILENT_READS) {
      state.localDown = true;
      if (state.conn !== 'down') {
        if (es) es.close();
        setConn('down');
      } else {
        render();
      }
    }
    kickWatch();
  }

  // watch reads this node's status: a heartbeat while the stream is open,
  // the way back while it is not (it reopens the stream once the node
  // answers).
  let watchTimer = null;
  let watchInFlight = false;

  function kickWatch() {
    clearTimeout(watchTimer);
    if (!watchInFlight) watchTimer = setTimeout(watch, 0);
  }

  async function watch() {
    watchInFlight = true;
    try {
      const st = await api('GET', '/api/v1/status', undefined, true);
      // A switchover's steps and its sync's progress change the status
      // without an event: taken from the reads while it runs.
      if (state.conn !== 'open' || switchoverRunning() || st.switchover_run) {
        state.local = st;
        // Back: reopen the stream now rather than at the browser's next
        // retry (a stream still opening is left alone).
        if (state.conn === 'down' && (!es || es.readyState !== EventSource.OPEN)) connect();
        render();
      }
    } catch (e) {
      if (e.code === 401) return;
    } finally {
      watchInFlight = false;
    }
    clearTimeout(watchTimer);
    // A silent read with the stream open is checked again at once.
    const next = state.conn !== 'open' ? DOWN_POLL_MS : state.silentReads ? 0 : switchoverRunning() ? RUN_POLL_MS : WATCH_MS;
    watchTimer = setTimeout(watch, next);
  }

  function connect() {
    if (es) es.close();
    es = new EventSource('/api/v1/events');
    es.addEventListener('open', () => {
      const wasDown = state.conn === 'down';
      state.localSeenAt = Date.now();
      state.silentReads = 0;
      state.localDown = false;
      setConn('open');
      if (wasDown || !everOpen) {
        // Anything may have happened meanwhile (a restart of the node):
        // read the audit log again; the first event is the status.
        loadAudit();
        schedulePeer(true);
      }
      everOpen = true;
    });
    es.addEventListener('status', (e) => onLocalStatus(JSON.parse(e.data)));
    es.addEventListener('audit', (e) => {
      addAudit([JSON.parse(e.data)], false);
      renderAudit();
      pairTimelineSoon();
    });
    const mine = es;
    mine.addEventListener('error', () => {
      if (mine !== es) return;
      // The stream was live until now: what it showed was current.
      if (state.conn === 'open' && !state.localDown) state.localSeenAt = Date.now();
      if (state.conn !== 'down') setConn('down');
      // The server answered with an error (a restart ended the session,
      // a shutdown): the watch checks the session and reconnects.
      if (mine.readyState === EventSource.CLOSED) mine.close();
      kickWatch();
    });
  }

  // ---------- the confirmation dialog ----------

  const dialog = $('confirm');
  let pending = null; // {side, action, opener, forceShown}
  let submitting = false;

  // consequence says what the command will do, and whether to offer force.
  function consequence(side, action) {
    const name = nameOf(side);
    const st = nodeOf(side);
    const other = nodeOf(otherSide(side));
    const otherName = nameOf(otherSide(side));
    const otherKnown = !!other;
    if (action === 'start') {
      if (other && other.status === 'active') {
        return {
          warn: true, force: true,
          text: otherName + ' is Active: starting ' + name + ' makes two Active nodes. Both would run the telephony ' +
            'and the phones may register on either. Stop services on ' + otherName + ' first, unless it is really down ' +
            'and ' + name + ' cannot see it.',
        };
      }
      if (!otherKnown) {
        return {
          warn: true, force: false,
          text: otherName + ' cannot be read from this page, so it may be Active. ' + name + ' checks it again before ' +
            'starting and refuses if it sees it Active; if it cannot reach it, it starts. Make sure ' + otherName + ' is down.',
        };
      }
      return {
        warn: false, force: false,
        text: name + ' becomes Active (epoch ' + ((st ? st.epoch : 0) + 1) + ' or above) and runs the telephony. ' +
          otherName + ' stays ' + statusText(other.status) + '.',
      };
    }
    const sb = splitBrain();
    if (sb && side === sb.staleSide) {
      return {
        warn: false, force: false,
        text: 'Two Active nodes: ' + name + ' holds the older claim (' + claimText(sb) + '). Stopping services on ' + name +
          ' ends its calls; ' + otherName + ' stays Active and alone runs the telephony.',
      };
    }
    if (sb) {
      return {
        warn: true, force: false,
        text: 'Two Active nodes: ' + name + ' holds the newer claim (' + claimText(sb, true) + '): it is the one to keep. ' +
          'Stop services on ' + otherName + ' instead, unless you mean to move the telephony there.',
      };
    }
    if (st && st.mode === 'auto' && claimsActive(st) && other && other.status === 'inactive') {
      if (takesOver(other)) {
        return {
          warn: true, force: false,
          text: 'Stopping services on ' + name + ' ends the calls on it. ' + otherName + ' takes over within about a second; ' +
            name + ' is then held Inactive until you Start services on it.',
        };
      }
      return {
        warn: true, force: false,
        text: 'Stopping services on ' + name + ' ends the calls on it, and ' + otherName + ' does not take over: ' +
          notTakingOver(other) + '. No node runs the telephony until you start services on one of them.',
      };
    }
    if (other && other.status === 'active') {
      return { warn: false, force: false, text: 'Stopping services on ' + name + ' ends its calls; ' + otherName + ' stays Active and alone runs the telephony.' };
    }
    if (!otherKnown) {
      return { warn: true, force: false, text: name + ' is ' + statusText(st && st.status) + ': stopping its services ends the calls on it. ' + otherName + ' cannot be read, so the telephony may be down until you start services somewhere.' };
    }
    return {
      warn: true, force: false,
      text: name + ' is ' + statusText(st && st.status) + ': stopping its services ends the calls on it, and no node runs the telephony until you start services on ' + otherName + '.',
    };
  }

  // takesOver: in auto mode, an Inactive node that is healthy and holds
  // nothing goes Active by itself when its Active peer stops.
  function takesOver(st) {
    return st.mode === 'auto' && st.healthy && !(st.failover && (st.failover.holding || st.failover.held_by_admin));
  }

  function notTakingOver(st) {
    if (st.mode !== 'auto') return 'it is in manual mode';
    if (!st.healthy) return 'it is unhealthy';
    if (st.failover && st.failover.held_by_admin) return 'it is held by an admin\'s Stop';
    if (st.failover && st.failover.manual) return 'a manual HA failover holds it';
    return 'it holds Inactive';
  }

  // haConsequence says what a switchover or manual HA failover of this
  // node will do.
  function haConsequence(action) {
    const name = nameOf('local');
    const other = peerName();
    if (action === 'switchover') {
      return {
        warn: true,
        text: name + ' stops, then ' + other + ' starts; calls move to ' + other + '. Calls in progress on ' + name +
          ' end. If ' + other + ' cannot start, the switchover is rolled back and ' + name + ' stays Active.',
      };
    }
    if (action === 'failover') {
      const until = new Date(Date.now() + (DURATION_MS[$('confirm-for').value] || 0));
      return {
        warn: true,
        text: name + ' steps down and holds Inactive until ' + localTime(until) + '; ' + other +
          ' carries the load; the pair is not redundant meanwhile. Calls in progress on ' + name + ' end.',
      };
    }
    if (action === 'replicate') {
      const jobs = ((state.local && state.local.replication) || []).filter((r) => !r.direction || r.direction === 'send').map((r) => r.name);
      return {
        warn: false,
        text: name + ' runs its replication jobs to ' + other + ' now (' + ([...new Set(jobs)].join(', ') || 'all jobs') +
          '), besides their schedule. Nothing stops: the telephony keeps running. The page waits for the run, or shows it running.',
      };
    }
    return {
      warn: false,
      text: 'The manual HA failover of ' + name + ' ends now: ' + name + ' no longer holds Inactive, and failback follows the configured policy.',
    };
  }

  function openConfirm(side, action, opener) {
    if (opener.disabled) return;
    pending = { side, action, opener, forceShown: false };
    $('confirm-reason').value = '';
    $('confirm-force').checked = false;
    $('confirm-sync').checked = false;
    $('confirm-for').value = '30m';
    $('confirm-error').hidden = true;
    $('confirm-error').textContent = '';
    updateConfirm();
    dialog.showModal();
    $('confirm-reason').focus();
  }

  function updateConfirm() {
    if (!pending) return;
    const { side, action } = pending;
    const name = nameOf(side);
    const ok = $('confirm-ok');
    const box = $('confirm-consequence');
    $('sync-box').hidden = !(action === 'switchover' && hasSendJobs());
    if ($('sync-box').hidden) $('confirm-sync').checked = false;
    $('for-box').hidden = action !== 'failover';
    if (!ACTIONS[action].path) {
      updateServicesConfirm(side, action, name, ok, box);
    } else {
      const cq = haConsequence(action);
      $('confirm-title').textContent = action === 'switchover' ? 'Switchover from ' + name + ' to ' + peerName() + '?' :
        action === 'failover' ? 'Manual HA failover of ' + name + '?' :
          action === 'replicate' ? 'Replicate now from ' + name + ' to ' + peerName() + '?' : 'Stop the manual HA failover of ' + name + '?';
      box.className = 'consequence' + (cq.warn ? ' consequence-warn' : '');
      box.textContent = cq.text;
      $('force-box').hidden = true;
      $('confirm-force').checked = false;
      ok.textContent = action === 'switchover' ? 'Switch over to ' + peerName() :
        action === 'failover' ? 'Start manual HA failover' : action === 'replicate' ? 'Replicate now' : 'Stop manual failover';
      ok.className = 'btn ' + (action === 'unfailover' || action === 'replicate' ? 'btn-primary' : 'btn-danger');
    }
    ok.disabled = submitting;
    $('confirm-cancel').disabled = false;
  }

  function updateServicesConfirm(side, action, name, ok, box) {
    const cq = consequence(side, action);
    $('confirm-title').textContent = (action === 'start' ? 'Start services on ' : 'Stop services on ') + name + '?';
    box.className = 'consequence' + (cq.warn ? ' consequence-warn' : '');
    box.textContent = cq.text;
    const showForce = action === 'start' && (cq.force || pending.forceShown);
    $('force-box').hidden = !showForce;
    if (showForce) {
      $('force-text').textContent = pending.forceShown && !cq.force ?
        name + ' refused because it sees another Active node. Check that node; if it is really down or unusable, you can force the start.' :
        'Forcing overrides the two-Active guard. Use it only when ' + nameOf(otherSide(side)) + ' is really down or unusable.';
    } else {
      $('confirm-force').checked = false;
    }
    const force = showForce && $('confirm-force').checked;
    ok.textContent = action === 'start' ? (force ? 'Force start on ' + name : 'Start services on ' + name) : 'Stop services on ' + name;
    ok.className = 'btn ' + (action === 'stop' || force ? 'btn-danger' : 'btn-primary');
  }

  function closeConfirm() {
    const opener = pending && pending.opener;
    pending = null;
    if (dialog.open) dialog.close();
    if (opener && !opener.disabled) opener.focus();
    else $('summary').focus();
  }

  async function submitConfirm(ev) {
    ev.preventDefault();
    if (!pending || submitting) return;
    const { side, action } = pending;
    const reason = $('confirm-reason').value.trim();
    const err = $('confirm-error');
    if (!reason) {
      err.textContent = 'A reason is required: it is recorded in the audit log.';
      err.hidden = false;
      $('confirm-reason').focus();
      return;
    }
    const name = nameOf(side);
    const forceOn = !$('force-box').hidden && $('confirm-force').checked;
    const act = ACTIONS[action];
    let body = { reason };
    if (action === 'start') body = { reason, force: forceOn };
    else if (action === 'switchover') body = { reason, sync: !$('sync-box').hidden && $('confirm-sync').checked };
    else if (action === 'failover') body = { reason, for: $('confirm-for').value };
    const path = act.path || (side === 'peer' ? '/api/v1/peer/services/' : '/api/v1/services/') + action;
    submitting = true;
    state.busy = act.busy + name;
    err.hidden = true;
    updateConfirm();
    render();
    if (action === 'replicate') cards.local.replOut.textContent = '';
    // The switchover's steps show as they happen: read at once, then
    // every RUN_POLL_MS while it runs.
    if (action === 'switchover') setTimeout(kickWatch, 200);
    try {
      const st = await api(act.method || 'POST', path, body);
      if (action === 'replicate') {
        // The answer is the jobs' status (the run may go on after it).
        if (state.local && Array.isArray(st)) state.local = Object.assign({}, state.local, { replication: st });
        const out = replicateOutcome(st);
        submitting = false;
        state.busy = null;
        closeConfirm();
        showReplicateOutcome('Replicate now from ' + name + ': ' + out.text, out.bad);
        loadStatus();
        render();
        return;
      }
      if (side === 'local') state.local = st;
      else {
        state.peer = st;
        state.peerErr = null;
        state.peerLast = st;
        state.peerLastAt = Date.now();
      }
      submitting = false;
      state.busy = null;
      closeConfirm();
      toast(act.label + ' on ' + name + ': done, ' + name + ' is ' + statusText(st.status) + '.');
      schedulePeer(true);
    } catch (e) {
      submitting = false;
      state.busy = null;
      if (e.code === 401) return;
      let msg = name + ' refused: ' + e.message;
      if (e.code === 0 || e.code === 502) msg = 'Not done: ' + e.message;
      else if (e.code >= 500) msg = act.label + ' on ' + name + ' failed: ' + e.message;
      else if (e.code === 403) msg = 'Refused: ' + e.message;
      if (pending && action === 'start' && e.code === 409 && !/transition/i.test(e.message)) {
        pending.forceShown = true;
      }
      if (action === 'replicate' && e.code !== 0) {
        // The node's refusal or failure is the outcome of the run: shown
        // by the table, where it stays.
        // The node's message of a failed run starts with "failed:".
        if (e.code >= 500) msg = 'Replicate now from ' + name + ': ' + e.message;
        closeConfirm();
        showReplicateOutcome(msg, true);
        loadStatus();
        render();
        return;
      }
      if (pending) {
        err.textContent = msg;
        err.hidden = false;
        updateConfirm();
        err.focus();
      } else {
        toast(msg, true);
      }
      schedulePeer(true);
    }
    render();
  }

  // Keep Tab inside the dialog; Escape closes it (the browser's cancel).
  dialog.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab') return;
    const f = [...dialog.querySelectorAll('button, textarea, input, select, [tabindex]:not([tabindex="-1"])')]
      .filter((x) => !x.disabled && x.offsetParent !== null);
    if (!f.length) return;
    const first = f[0];
    const last = f[f.length - 1];
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  });
  dialog.addEventListener('cancel', (e) => {
    e.preventDefault();
    closeConfirm();
  });
  dialog.addEventListener('click', (e) => {
    // A click on the backdrop closes the dialog.
    if (e.target === dialog) closeConfirm();
  });
  $('confirm-cancel').addEventListener('click', closeConfirm);
  $('confirm-form').addEventListener('submit', submitConfirm);
  $('confirm-force').addEventListener('change', updateConfirm);
  $('confirm-for').addEventListener('change', updateConfirm);
  $('btn-switchover').addEventListener('click', () => openConfirm('local', 'switchover', $('btn-switchover')));
  $('btn-failover').addEventListener('click', () => openConfirm('local', 'failover', $('btn-failover')));
  $('confirm-error').tabIndex = -1;
  $('summary').tabIndex = -1;
  $('audit-more').addEventListener('click', loadOlderAudit);
  $('split-stop').addEventListener('click', () => openConfirm($('split-stop').dataset.side, 'stop', $('split-stop')));

  // showReplicateOutcome says how Replicate now ended, under the table
  // (until the next run) and in the toast.
  function showReplicateOutcome(msg, bad) {
    const o = cards.local.replOut;
    o.textContent = msg;
    o.className = 'replicate-outcome ' + (bad ? 'outcome-bad' : 'outcome-ok');
    toast(msg, bad);
  }

  // ---------- pair timeline ----------
  //
  // Both nodes' audit entries on one time axis (GET /api/v1/audit/pair):
  // an SVG strip of each node's status over time, with the windows with
  // no Active node and with two, and the merged entries below, filtered,
  // routine runs folded. Self-contained: it reads its own data and keeps
  // its own state (pt); the rest of the page calls initPairTimeline once
  // and pairTimelineSoon when this node writes an audit entry.

  const PT_LIMIT = 200;
  const PT_POLL_MS = 10000;
  const PT_LAST_TRANSITIONS = 10;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const pt = { data: null, error: '', timer: null, soon: null, inFlight: false, open: new Set() };

  function svgEl(tag, attrs, title) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (title) {
      const t = document.createElementNS(SVG_NS, 'title');
      t.textContent = title;
      e.append(t);
    }
    return e;
  }

  // ptSpan is a length: tenths of a second below 10 s (a handover's
  // window is often shorter than a second), then seconds, minutes, hours.
  function ptSpan(ms) {
    if (ms < 9950) return Math.round(ms / 100) / 10 + ' s';
    const s = Math.round(ms / 1000);
    if (s < 120) return s + ' s';
    if (s < 7200) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  // ptTime is a time with its zone, the date when it is not today.
  function ptTime(d) {
    return sameUTCDay(d) ? utcClock(d) : dateFmt.format(d);
  }

  function ptKind(e) {
    if (e.action === 'replication' && e.outcome === 'ok' && e.from === e.to) return 'routine';
    if (/^(web|api)(:|$)/.test(e.who)) return 'admin';
    if (e.who === 'resman' && e.to && e.from !== e.to) return 'auto';
    return 'other';
  }

  function ptFilter() {
    const f = document.querySelector('input[name="pt-filter"]:checked');
    return f ? f.value : 'all';
  }

  function ptKeep(e, f) {
    if (f === 'admin') return ptKind(e) === 'admin';
    if (f === 'auto') return ptKind(e) === 'auto';
    if (f === 'failures') return e.outcome !== 'ok';
    return true;
  }

  // ptNodes: this node first, then its peer.
  function ptNodes(d) {
    return d.peer ? [d.node, d.peer] : [d.node];
  }

  // ptRange is the span the strip shows, in ms.
  function ptRange(d) {
    const end = when(d.now) ? when(d.now).getTime() : Date.now();
    const starts = d.periods.map((p) => when(p.start).getTime());
    const first = starts.length ? Math.min(...starts) : end - 3600000;
    const choice = $('pt-range').value;
    let start = first;
    if (choice === '1h') start = end - 3600000;
    else if (choice === '24h') start = end - 86400000;
    else if (choice === 'last') {
      // The last transitions: the periods that began after a node's first.
      const seen = new Set();
      const changes = [];
      for (const p of d.periods) {
        if (seen.has(p.node)) changes.push(when(p.start).getTime());
        seen.add(p.node);
      }
      changes.sort((a, b) => a - b);
      const last = changes.slice(-PT_LAST_TRANSITIONS);
      if (last.length) {
        const pad = Math.max((end - last[0]) * 0.15, 5000);
        start = Math.max(first, last[0] - pad);
      }
    }
    if (end - start < 10000) start = end - 10000;
    return { start, end };
  }

  const PT_STATUS_CLASS = { active: 'pt-active', activating: 'pt-moving', deactivating: 'pt-moving', inactive: 'pt-inactive' };

  function renderPairStrip() {
    const d = pt.data;
    const box = $('pt-strip');
    if (!d) {
      box.replaceChildren(el('p', { class: 'muted' }, pt.error ? 'Cannot read the pair timeline: ' + pt.error : 'Loading…'));
      return;
    }
    const nodes = ptNodes(d);
    const { start, end } = ptRange(d);
    const W = 1000;
    const LANE = 26;
    const GAP = 6;
    const H = nodes.length * (LANE + GAP) + GAP;
    const x = (t) => Math.max(0, Math.min(W, ((t - start) / (end - start)) * W));
    const svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', class: 'pt-svg',
      role: 'img', 'aria-labelledby': 'pt-svg-title', 'data-start': new Date(start).toISOString(),
      'data-end': new Date(end).toISOString() });
    const title = svgEl('title', { id: 'pt-svg-title' });
    title.textContent = 'Status of ' + nodes.join(' and ') + ' from ' + ptTime(new Date(start)) + ' to ' + ptTime(new Date(end));
    svg.append(title);
    nodes.forEach((n, i) => {
      svg.append(svgEl('rect', { x: 0, y: GAP + i * (LANE + GAP), width: W, height: LANE, class: 'pt-lane' }));
    });
    for (const p of d.periods) {
      const i = nodes.indexOf(p.node);
      const s = when(p.start).getTime();
      const e = when(p.end).getTime();
      if (i < 0 || e < start || s > end) continue;
      const x0 = x(s);
      const w = Math.max(x(e) - x0, 1.5);
      const inactive = p.status === 'inactive';
      const y = GAP + i * (LANE + GAP) + (inactive ? LANE * 0.35 : 0);
      svg.append(svgEl('rect', { x: x0, y, width: w, height: inactive ? LANE * 0.3 : LANE,
        class: 'pt-band ' + (PT_STATUS_CLASS[p.status] || 'pt-unknown'),
        'data-node': p.node, 'data-status': p.status, 'data-start': p.start, 'data-end': p.end },
      p.node + ' ' + plainStatus(p.status) + ' from ' + ptTime(new Date(s)) + ' to ' + ptTime(new Date(e)) + ' (' + ptSpan(e - s) + ')'));
    }
    for (const win of d.windows) {
      const s = when(win.start).getTime();
      const e = when(win.end).getTime();
      if (e < start || s > end) continue;
      const x0 = x(s);
      const w = Math.max(x(e) - x0, 4);
      const two = win.kind === 'two_active';
      svg.append(svgEl('rect', { x: Math.min(x0, W - w), y: 0, width: w, height: H,
        class: 'pt-win ' + (two ? 'pt-win-two' : 'pt-win-none'), 'data-kind': win.kind, 'data-start': win.start, 'data-end': win.end },
      (two ? 'Two Active nodes' : 'No Active node') + ' from ' + ptTime(new Date(s)) + ' to ' + ptTime(new Date(e)) + ' (' + ptSpan(e - s) + ')'));
    }
    for (const f of [0, 0.5, 1]) svg.append(svgEl('line', { x1: f * W, x2: f * W, y1: 0, y2: H, class: 'pt-tick' }));
    const labels = el('div', { class: 'pt-labels' }, nodes.map((n, i) => el('div', { class: 'pt-label', 'data-lane': String(i) },
      el('span', { class: 'pt-node' }, n), i === 0 ? el('span', { class: 'muted small' }, ' this node') :
        d.peer_error ? el('span', { class: 'muted small' }, ' not read') : null)));
    const axis = el('div', { class: 'pt-axis' }, [start, (start + end) / 2, end].map((t) =>
      el('span', {}, ptTime(new Date(t)))));
    box.replaceChildren(el('div', { class: 'pt-grid' }, labels, el('div', { class: 'pt-plot' }, svg, axis)));
  }

  function renderPairSummary() {
    const d = pt.data;
    const out = $('pt-summary');
    if (!d) {
      out.replaceChildren();
      return;
    }
    const s = d.summary;
    if (!d.peer || d.peer_error || !when(s.from)) {
      out.replaceChildren(el('span', { class: 'muted' }, d.peer_error ?
        'Only ' + d.node + '\'s entries: without ' + (d.peer || 'the peer') + '\'s, the windows with no or two Active nodes cannot be told.' :
        'Not enough transitions in the ' + d.limit + ' entries read of each node to tell when a node was Active.'));
      return;
    }
    const part = (label, secs, last, cls) => {
      const bits = [label + ': ' + (secs ? ptSpan(secs * 1000) : 'never')];
      if (last) bits.push(' (last ' + ptTime(when(last.start)) + ' to ' + ptTime(when(last.end)) + ', ' +
        ptSpan(when(last.end) - when(last.start)) + ')');
      return el('span', { class: secs ? cls : '' }, bits.join(''));
    };
    out.replaceChildren('Since ' + ptTime(when(s.from)) + ': ',
      part('No Active node', s.no_active_seconds, s.last_no_active, 'pt-text-none'), ' · ',
      part('Two Active nodes', s.two_active_seconds, s.last_two_active, 'pt-text-two'),
      el('span', { class: 'muted' }, ' (from the entries\' times, as each node\'s clock recorded them)'));
  }

  function ptRow(e) {
    const what = [e.action];
    if (e.to && e.from !== e.to) what.push(el('span', { class: 'pt-change' }, (e.from ? plainStatus(e.from) + ' → ' : '→ ') + plainStatus(e.to)));
    const why = [];
    if (e.reason) why.push(el('q', { class: 'pt-reason' }, e.reason));
    if (e.cause) why.push(el('span', {}, e.cause));
    if (e.detail) why.push(el('span', { class: 'muted' }, e.detail));
    const d = when(e.time);
    return el('tr', { class: 'pt-entry pt-kind-' + ptKind(e), 'data-node': e.node, 'data-id': String(e.id) },
      el('td', { class: 'nowrap' }, d ? el('time', { datetime: d.toISOString(), title: d.toISOString() }, ptTime(d)) : '—'),
      el('td', { class: 'pt-node' + (e.node === pt.data.node ? ' pt-node-local' : ' pt-node-peer') }, e.node),
      el('td', {}, e.who),
      el('td', { class: 'pt-what' }, el('span', {}, what.flatMap((w, i) => [i ? ' ' : '', w]))),
      el('td', { class: 'pt-why' }, why.length ? el('span', {}, why.flatMap((w, i) => [i ? ' · ' : '', w])) : el('span', { class: 'muted' }, '—')),
      el('td', {}, outcomeEl(e.outcome)));
  }

  // ptFold is one line for a run of routine entries, that opens them.
  function ptFold(run) {
    const key = run[0].node + '/' + run[0].id;
    const open = pt.open.has(key);
    const first = when(run[run.length - 1].time);
    const last = when(run[0].time);
    const nodes = [...new Set(run.map((e) => e.node))].join(', ');
    const btn = el('button', { type: 'button', class: 'pt-fold-btn', 'aria-expanded': open ? 'true' : 'false' },
      (open ? '▾ ' : '▸ ') + run.length + ' routine ' + (run.length === 1 ? 'entry' : 'entries') +
      ' (replication runs that went well) on ' + nodes + ', ' + ptTime(first) + ' to ' + ptTime(last) +
      (open ? ': fold' : ': show'));
    btn.addEventListener('click', () => {
      if (pt.open.has(key)) pt.open.delete(key);
      else pt.open.add(key);
      renderPairEntries();
    });
    const row = el('tr', { class: 'pt-fold', 'data-count': String(run.length) }, el('td', { colspan: '6' }, btn));
    return open ? [row, ...run.map(ptRow)] : [row];
  }

  function renderPairEntries() {
    const body = $('pt-body');
    const d = pt.data;
    if (!d) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: '6', class: 'muted' }, pt.error ? 'Cannot read the pair timeline.' : 'Loading…')));
      return;
    }
    const f = ptFilter();
    const shown = d.entries.filter((e) => ptKeep(e, f));
    if (!shown.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: '6', class: 'muted' },
        d.entries.length ? 'No entry matches this filter among the ' + d.entries.length + ' read.' : 'No entries yet.')));
      return;
    }
    const rows = [];
    let run = [];
    const flush = () => {
      if (run.length) rows.push(...ptFold(run));
      run = [];
    };
    for (const e of shown) {
      if (ptKind(e) === 'routine') {
        run.push(e);
        continue;
      }
      flush();
      rows.push(ptRow(e));
    }
    flush();
    labelCells(rows.filter((r) => r.classList.contains('pt-entry')), ['When', 'Node', 'Who', 'What', 'Why', 'Outcome']);
    body.replaceChildren(...rows);
  }

  function renderPairTimeline() {
    const err = $('pt-peer-error');
    const d = pt.data;
    if (d && d.peer_error) {
      err.textContent = 'Only ' + d.node + '\'s entries: ' + d.peer_error + '.';
      err.hidden = false;
    } else {
      err.hidden = true;
    }
    renderPairStrip();
    renderPairSummary();
    renderPairEntries();
  }

  async function loadPairTimeline() {
    if (pt.inFlight || state.localDown) return;
    pt.inFlight = true;
    try {
      pt.data = await api('GET', '/api/v1/audit/pair?limit=' + PT_LIMIT, undefined, true);
      pt.error = '';
    } catch (e) {
      pt.error = e.message;
    } finally {
      pt.inFlight = false;
    }
    renderPairTimeline();
  }

  // pairTimelineSoon reads the timeline again shortly (this node wrote an
  // entry; more usually follow in the same second).
  function pairTimelineSoon() {
    clearTimeout(pt.soon);
    pt.soon = setTimeout(loadPairTimeline, 1000);
  }

  function initPairTimeline() {
    for (const r of document.querySelectorAll('input[name="pt-filter"]')) r.addEventListener('change', renderPairEntries);
    $('pt-range').addEventListener('change', renderPairStrip);
    loadPairTimeline();
    pt.timer = setInterval(loadPairTimeline, PT_POLL_MS);
  }

  // ---------- toast ----------

  let toastTimer = null;

  function toast(msg, bad) {
    const t = $('toast');
    t.textContent = msg;
    t.className = 'toast' + (bad ? ' toast-bad' : ' toast-ok');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      t.textContent = '';
      t.className = 'toast';
    }, 15000);
  }

  // ---------- start ----------

  buildCard('local');
  buildCard('peer');
  render();
  loadStatus();
  connect();
  initPairTimeline();
  watchTimer = setTimeout(watch, WATCH_MS);
  // Relative times ("2 min ago") age on their own; the age of what a page
  // whose node does not answer shows, every second.
  setInterval(() => {
    if (!dialog.open && !state.localDown) render();
  }, 15000);
  setInterval(() => {
    if (!dialog.open && state.localDown) render();
  }, 1000);
}());
