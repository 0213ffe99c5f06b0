// The seed's Node/Express app (docs: /work/shared/seed, "Shared session store"): express-session +
// connect-redis v7 + redis, with the routes of tether-app and the same JSON answers, so that it is a peer
// behind the balancer: same cookie (connect.sid, signed with the same secret), same Redis keys and values.
//
//   node app.js --listen 127.0.0.1:PORT --name NAME --redis redis://127.0.0.1:PORT --secret S [--secret S2]
//               [--secure] [--trust-proxy loopback] [--store redis|memory]
//
// --store memory keeps sessions in express-session's MemoryStore instead (no Redis): each instance has its
// own, lost when it stops, as an app behind sticky sessions without a shared store (the session monitor's
// test kills one).
//
// It listens once its Redis client is connected, so "the port accepts" means "ready". The npm packages
// are tests/interop's (package.json there; Node finds ../node_modules).
//
// Routes, as tether-app (src/app/main.c):
//   GET  /         an HTML page (which server, visits, cart, a login form)
//   GET  /whoami   {"server","session_id","visits","user","cart"}; visits += 1
//   POST /login    form or JSON {"user"}: a new session id (regenerate), visits and cart kept
//   POST /cart     form or JSON {"item"}: appended to the cart
//   POST /logout   destroys the session
//   GET  /health   200 {"status":"ok"} when Redis answers, else 503 with the reason
// A store failure gives 503 {"error":"session store unavailable",...}.
//
// Changes from the seed's snippet: the Redis address goes in `socket` (redis@4 ignores a top-level
// host/port and dials localhost:6379) and the client must be connect()ed; `secure` is off unless --secure
// is given, because the tests and the demo speak plain HTTP on loopback (a Secure cookie would never come
// back); with --secure (and --trust-proxy), the seed's settings behind a proxy that ends TLS.
'use strict';

const { parseArgs } = require('node:util');
const express = require('express');
const session = require('express-session');
const RedisStore = require('connect-redis').default;
const { createClient } = require('redis');

function usage(msg) {
  if (msg) console.error(`app.js: ${msg}`);
  console.error(
    'usage: node app.js --listen 127.0.0.1:PORT --name NAME --redis redis://HOST:PORT --secret S [--secret S2]'
  );
  process.exit(2);
}

let opts;
try {
  opts = parseArgs({
    options: {
      listen: { type: 'string', default: '127.0.0.1:9004' },
      name: { type: 'string', default: 'express' },
      redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
      secret: { type: 'string', multiple: true },
      'max-age': { type: 'string', default: '3600' },
      secure: { type: 'boolean', default: false },
      'trust-proxy': { type: 'string' },
      store: { type: 'string', default: 'redis' },
    },
  }).values;
} catch (e) {
  usage(e.message);
}
const secrets = opts.secret || (process.env.TETHER_SECRET ? [process.env.TETHER_SECRET] : []);
if (secrets.length === 0) usage('a cookie secret is required: --secret S (or $TETHER_SECRET)');
const m = /^([0-9.]+):([0-9]+)$/.exec(opts.listen);
if (!m) usage(`--listen takes IP:PORT, got ${opts.listen}`);
if (opts.store !== 'redis' && opts.store !== 'memory') usage(`--store takes redis or memory, got ${opts.store}`);
const inMemory = opts.store === 'memory';
const redisUrl = new URL(opts.redis);
const maxAgeMs = Number(opts['max-age']) * 1000;
const NAME = opts.name;

// ---- the seed's code, with GET /health put before the session middleware ----
const app = express();

const redisClient = createClient({
  socket: { host: redisUrl.hostname, port: Number(redisUrl.port || 6379), connectTimeout: 1000 },
});
redisClient.on('error', (err) => console.error('redis:', err.message));

// GET /health needs no session: it stands before express-session, so it never creates one.
app.get('/health', (req, res) => {
  if (inMemory) return res.json({ status: 'ok', server: NAME, store: 'memory' });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('redis: no answer in 1000 ms')), 1000);
  });
  Promise.race([redisClient.ping(), timeout])
    .then(() => res.json({ status: 'ok', server: NAME, store: 'redis' }))
    .catch((err) => res.status(503).json({ status: 'unavailable', server: NAME, reason: String(err.message || err) }))
    .finally(() => clearTimeout(timer));
});

// --secure is the seed's own `cookie.secure: true`; behind a proxy that ends TLS it needs Express's
// `trust proxy` (--trust-proxy loopback), so that req.secure follows the proxy's X-Forwarded-Proto.
if (opts['trust-proxy']) app.set('trust proxy', opts['trust-proxy']);

app.use(
  session({
    store: inMemory ? new session.MemoryStore() : new RedisStore({ client: redisClient }),
    secret: secrets.length === 1 ? secrets[0] : secrets,
    resave: false,
    saveUninitialized: false,
    cookie: {
      secure: opts.secure,
      httpOnly: true,
      maxAge: maxAgeMs, // the seed's 3600000 by default (--max-age 3600, as tether-app)
    },
  })
);
// ---- end of the seed's code ----

app.disable('x-powered-by');
app.use(express.json({ limit: '64kb' }));
app.use(express.urlencoded({ extended: false, limit: '64kb' }));
app.use((req, res, next) => {
  res.set('X-Served-By', NAME);
  res.set('Cache-Control', 'no-store');
  next();
});

function whoami(req) {
  const s = req.session;
  return {
    server: NAME,
    session_id: req.sessionID,
    visits: Number.isInteger(s.visits) ? s.visits : 0,
    user: s.user === undefined ? null : s.user,
    cart: Array.isArray(s.cart) ? s.cart : [],
  };
}

function visitsInc(req) {
  req.session.visits = (Number.isInteger(req.session.visits) ? req.session.visits : 0) + 1;
}

// A body field as tether-app reads it: a string, or a number as text.
function field(req, key) {
  const v = req.body ? req.body[key] : undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  return null;
}

function validText(s, max) {
  // eslint-disable-next-line no-control-regex
  return typeof s === 'string' && s.length > 0 && Buffer.byteLength(s) <= max && !/[\u0000-\u001f]/.test(s);
}

const isForm = (req) => !req.is('application/json');

function escapeHtml(s) {
  return String(s).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]);
}

app.get('/', (req, res) => {
  visitsInc(req);
  const w = whoami(req);
  const login =
    typeof w.user === 'string'
      ? `<p>Logged in as <span id="user">${escapeHtml(w.user)}</span></p>\n` +
        '<form method="post" action="/logout"><button id="logout">Log out</button></form>\n'
      : '<form method="post" action="/login"><label>Name <input id="name" name="user" value="alice"></label> ' +
        '<button id="login">Log in</button></form>\n';
  const cart = w.cart.length ? w.cart.filter((i) => typeof i === 'string').map(escapeHtml).join(', ') : 'empty';
  res.type('html').send(
    '<!doctype html>\n<html><head><meta charset="utf-8"><title>Tether demo: ' +
      escapeHtml(NAME) +
      '</title></head>\n<body>\n' +
      `<p>Answered by <span id="server">${escapeHtml(NAME)}</span></p>\n` +
      `<p>Visits in this session: <span id="visits">${w.visits}</span></p>\n` +
      login +
      `<p>Cart: <span id="cart">${cart}</span></p>\n` +
      '<form method="post" action="/cart"><input name="item" value="book"> <button id="add">Add to cart</button></form>\n' +
      `<p>Session id: <code id="sid">${escapeHtml(req.sessionID.slice(0, 8))}&hellip;</code> in the ` +
      `<code>${inMemory ? 'memory' : 'redis'}</code> store (express-session${inMemory ? '' : ' + connect-redis'}).</p>\n</body></html>\n`
  );
});

app.get('/whoami', (req, res) => {
  visitsInc(req);
  res.json(whoami(req));
});

app.post('/login', (req, res, next) => {
  const user = field(req, 'user');
  if (!validText(user, 64)) return res.status(400).json({ error: 'a user name (1-64 characters) is required' });
  // a new id at login (session fixation), keeping the visits and the cart
  const keep = {};
  for (const k of Object.keys(req.session)) if (k !== 'cookie') keep[k] = req.session[k];
  req.session.regenerate((err) => {
    if (err) return next(err);
    Object.assign(req.session, keep);
    req.session.user = user;
    if (isForm(req)) return res.redirect(303, '/');
    res.json(whoami(req));
  });
});

app.post('/logout', (req, res, next) => {
  req.session.destroy((err) => {
    if (err) return next(err);
    if (isForm(req)) return res.redirect(303, '/');
    res.json({ ok: true, server: NAME });
  });
});

app.post('/cart', (req, res) => {
  const item = field(req, 'item');
  if (!validText(item, 100)) return res.status(400).json({ error: 'an item (1-100 characters) is required' });
  if (!Array.isArray(req.session.cart)) req.session.cart = [];
  if (req.session.cart.length >= 100) return res.status(400).json({ error: 'the cart is full (100 items)' });
  req.session.cart.push(item);
  if (isForm(req)) return res.redirect(303, '/');
  res.json(whoami(req));
});

app.use((req, res) => res.status(404).json({ error: 'not found' }));

// express-session passes store failures here
// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => {
  if (err.type === 'entity.parse.failed' || err.type === 'entity.too.large')
    return res.status(err.status || 400).json({ error: err.message });
  res.status(503).json({ error: 'session store unavailable', detail: String(err.message || err) });
});

let server;
function stop() {
  if (server) server.close(() => (inMemory ? Promise.resolve() : redisClient.quit()).finally(() => process.exit(0)));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

(inMemory ? Promise.resolve() : redisClient.connect())
  .then(() => {
    server = app.listen(Number(m[2]), m[1], () =>
      console.error(`app.js ${NAME}: listening on ${opts.listen}, sessions in ${inMemory ? 'memory' : opts.redis}`)
    );
  })
  .catch((err) => {
    console.error('app.js: cannot connect to redis:', err.message);
    process.exit(1);
  });
