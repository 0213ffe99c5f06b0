// The balancer's dashboard: reads GET /events (the admin API's status, once a second, as Server-Sent
// Events) through fetch, so that the admin token can go in an Authorization header, and acts through the
// admin API (POST .../drain|disable|enable, PUT .../weight) with the same token. Rates are differences
// between two events; the session-loss sparkline keeps the last 5 minutes.
'use strict';

const $ = (id) => document.getElementById(id);
const HISTORY = 300;
let prev = null;
let prevAt = 0;
let abort = null;
const history = new Map();

const token = $('token');
token.value = sessionStorage.getItem('tether-admin-token') || '';
token.addEventListener('change', () => {
  sessionStorage.setItem('tether-admin-token', token.value);
  connect();
});

function authHeaders(extra) {
  const h = Object.assign({}, extra || {});
  if (token.value) h.Authorization = 'Bearer ' + token.value;
  return h;
}

const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const total = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
const perSecond = (now, before, dt) => (before === undefined || dt <= 0 ? 0 : Math.max(0, now - before) / dt);

function spark(points, label) {
  if (points.length < 2) return '';
  const w = 96;
  const h = 26;
  const max = Math.max(0.01, ...points);
  const xy = points.map((v, i) => `${((i * w) / (HISTORY - 1)).toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`);
  return (
    `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(label)}">` +
    `<rect width="${w}" height="${h}" fill="#f3f4f6"/>` +
    `<polyline fill="none" stroke="#b00020" stroke-width="1.6" points="${xy.join(' ')}"/></svg>`
  );
}

// p50 and p99 of the requests between two events, from a histogram's bucket counts (bounds: the status's
// "le"), interpolated within a bucket as Prometheus's histogram_quantile does; null when nothing was counted.
function quantiles(counts, before, le) {
  if (!counts || !before) return null;
  const d = counts.map((c, i) => Math.max(0, c - (before[i] || 0)));
  const n = total(d);
  if (n === 0) return null;
  const at = (q) => {
    let seen = 0;
    for (let i = 0; i < d.length; i++) {
      if (d[i] > 0 && seen + d[i] >= q * n) {
        if (i >= le.length) return Infinity;
        const lo = i ? le[i - 1] : 0;
        return lo + ((le[i] - lo) * (q * n - seen)) / d[i];
      }
      seen += d[i];
    }
    return Infinity;
  };
  return [at(0.5), at(0.99)];
}
const ms = (s) => (s === Infinity ? 'over 10 s' : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`);

function serverRow(u, v, pv, dt, le) {
  const req = perSecond(total(v.requests), pv && total(pv.requests), dt);
  const err = perSecond(v.requests['5xx'] + v.requests.error, pv && pv.requests['5xx'] + pv.requests.error, dt);
  const key = u.name + ' ' + v.name;
  const q = quantiles(v.latency && v.latency.counts, pv && pv.latency && pv.latency.counts, le);
  const lat = q ? `<td data-label="p50">${ms(q[0])}</td><td data-label="p99">${ms(q[1])}</td>` : '<td data-label="p50">–</td><td data-label="p99">–</td>';
  let loss = '<td data-label="Session loss">–</td><td data-label="Last minutes"></td>';
  if (v.sessions) {
    const ps = pv && pv.sessions;
    const replaced = perSecond(v.sessions.replaced, ps && ps.replaced, dt);
    const presented = perSecond(v.sessions.presented, ps && ps.presented, dt);
    const rate = presented > 0 ? replaced / presented : 0;
    const h = history.get(key) || [];
    h.push(rate);
    if (h.length > HISTORY) h.shift();
    history.set(key, h);
    loss =
      `<td data-label="Session loss" class="loss${rate > 0.01 ? ' loss-bad' : ''}">${(rate * 100).toFixed(1)}%</td>` +
      `<td data-label="Last minutes">${spark(h, `session loss of ${v.name}, last minutes`)}</td>`;
  }
  const act = (a) =>
    `<button type="button" data-u="${esc(u.name)}" data-s="${esc(v.name)}" data-a="${a}" ` +
    `aria-label="${a} ${esc(v.name)} (${esc(u.name)})">${a}</button>`;
  return (
    `<tr data-server="${esc(v.name)}"><th scope="row">${esc(v.name)}${v.backup ? ' (backup)' : ''}</th>` +
    `<td data-label="State"><span class="state ${esc(v.state)}">${esc(v.state)}</span></td>` +
    `<td data-label="Health">${esc(v.health)}</td><td data-label="Weight">${v.weight}</td>` +
    `<td data-label="Req/s">${req.toFixed(1)}</td><td data-label="Errors/s">${err.toFixed(1)}</td>` +
    `<td data-label="Active">${v.active}</td>${lat}${loss}` +
    `<td class="actions" data-label="Actions">${act('drain')}${act('disable')}${act('enable')}` +
    `<span class="weight"><input type="number" min="1" max="1000" value="${v.weight}" ` +
    `aria-label="new weight of ${esc(v.name)} (${esc(u.name)})">` +
    `<button type="button" data-u="${esc(u.name)}" data-s="${esc(v.name)}" data-a="weight" ` +
    `aria-label="set the weight of ${esc(v.name)} (${esc(u.name)})">set weight</button></span></td></tr>`
  );
}

function render(s, at) {
  const dt = prev ? (at - prevAt) / 1000 : 0;
  const q = quantiles(s.latency.counts, prev && prev.latency.counts, s.latency.le);
  $('summary').textContent =
    `configuration ${s.generation} · ${s.active_connections} connections` +
    (q ? ` · p50 ${ms(q[0])}, p99 ${ms(q[1])}` : '');
  let html = '';
  for (const u of s.upstreams) {
    const pu = prev && prev.upstreams.find((x) => x.name === u.name);
    html += `<section aria-labelledby="u-${esc(u.name)}"><h2 id="u-${esc(u.name)}">${esc(u.name)} <small>${esc(u.balance)}</small></h2>`;
    if (u.persistence) {
      const parts = Object.entries(u.persistence).map(
        ([k, n]) => `${esc(k.replace('_', ' '))} ${perSecond(n, pu && pu.persistence && pu.persistence[k], dt).toFixed(1)}/s`
      );
      html += `<p>Persistence: ${parts.join(' · ')}</p>`;
    }
    html +=
      '<div class="wrap"><table><thead><tr><th scope="col">Server</th><th scope="col">State</th>' +
      '<th scope="col">Health</th><th scope="col">Weight</th><th scope="col">Req/s</th><th scope="col">Errors/s</th>' +
      '<th scope="col">Active</th><th scope="col">p50</th><th scope="col">p99</th><th scope="col">Session loss</th><th scope="col">Last minutes</th>' +
      '<th scope="col">Actions</th></tr></thead><tbody>';
    for (const v of u.servers) html += serverRow(u, v, pu && pu.servers.find((x) => x.name === v.name), dt, s.latency.le);
    html += '</tbody></table></div></section>';
  }
  // a weight being typed or a button in focus stays as it is until it is left
  const focused = document.activeElement;
  if (!(focused && $('upstreams').contains(focused))) $('upstreams').innerHTML = html;
}

async function act(button) {
  const { u, s, a } = button.dataset;
  const init = { method: a === 'weight' ? 'PUT' : 'POST', headers: authHeaders({ 'Content-Type': 'application/json' }) };
  if (a === 'weight') init.body = button.previousElementSibling.value;
  const r = await fetch(`/upstreams/${u}/servers/${s}/${a}`, init);
  $('msg').textContent = r.ok ? `${a}: ${s} done` : `${a} ${s}: ${r.status} ${(await r.text()).trim()}`;
  button.blur();
}

$('upstreams').addEventListener('click', (e) => {
  const b = e.target.closest('button[data-a]');
  if (b) act(b).catch((err) => ($('msg').textContent = String(err)));
});

async function connect() {
  if (abort) abort.abort();
  abort = new AbortController();
  const mine = abort;
  try {
    const r = await fetch('/events', { headers: authHeaders(), signal: mine.signal, cache: 'no-store' });
    if (!r.ok) {
      $('live').textContent = r.status === 401 ? 'enter the admin token' : `error ${r.status}`;
      if (r.status !== 401) setTimeout(() => mine === abort && connect(), 3000);
      return;
    }
    $('live').textContent = 'live';
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const data = buf
          .slice(0, end)
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5))
          .join('\n');
        buf = buf.slice(end + 2);
        if (!data) continue;
        const s = JSON.parse(data);
        const at = Date.now();
        render(s, at);
        prev = s;
        prevAt = at;
      }
    }
  } catch (e) {
    if (e.name === 'AbortError') return;
  }
  if (mine !== abort) return;
  $('live').textContent = 'reconnecting';
  setTimeout(() => mine === abort && connect(), 2000);
}

connect();
