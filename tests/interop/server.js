// The seed's Express app (express-session + connect-redis v7), as the interop tests' Node peer.
//   node server.js PORT REDIS_PORT SECRETS_JSON
// Listens on 127.0.0.1:PORT once its Redis client is connected, so "the port accepts" means "ready".
// Routes (all answer the session as JSON: {id, loaded, data, cookie}):
//   GET  /session   read only (express-session then touches an existing session: EXPIRE)
//   POST /set       merges the JSON body into the session
//   POST /visit     visits += 1
// Two changes from the seed's snippet, both needed with redis@4: the address goes in `socket` (a top-level
// host/port is ignored and the client dials localhost:6379), and the client must be connect()ed.
'use strict';

const express = require('express');
const session = require('express-session');
const RedisStore = require('connect-redis').default;
const { createClient } = require('redis');

const [port, redisPort, secretsJson] = process.argv.slice(2);
if (!port || !redisPort || !secretsJson) {
  console.error('usage: node server.js PORT REDIS_PORT SECRETS_JSON');
  process.exit(2);
}
const secrets = JSON.parse(secretsJson);

const redisClient = createClient({
  socket: { host: '127.0.0.1', port: Number(redisPort), connectTimeout: 5000 },
});
redisClient.on('error', (err) => console.error('redis:', err.message));

const app = express();
app.use(express.json());

// The signed id the request's cookie carried, to tell a loaded session from a new one.
function cookieId(req) {
  const header = req.headers.cookie || '';
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== 'connect.sid') continue;
    let v = part.slice(eq + 1).trim();
    try {
      v = decodeURIComponent(v);
    } catch (e) {
      // raw
    }
    return v.startsWith('s:') ? v.slice(2, v.lastIndexOf('.')) : null;
  }
  return null;
}

app.use(
  session({
    store: new RedisStore({ client: redisClient }),
    secret: secrets.length === 1 ? secrets[0] : secrets,
    resave: false,
    saveUninitialized: false,
    cookie: {
      secure: false, // the tests speak plain HTTP on loopback
      httpOnly: true,
      maxAge: 3600000,
    },
  })
);

function report(req, res) {
  const data = {};
  for (const k of Object.keys(req.session)) if (k !== 'cookie') data[k] = req.session[k];
  const c = req.session.cookie;
  res.json({
    id: req.sessionID,
    loaded: cookieId(req) === req.sessionID,
    data,
    cookie: {
      originalMaxAge: c.originalMaxAge,
      expires: c.expires ? c.expires.toISOString() : null,
      httpOnly: c.httpOnly,
      secure: c.secure,
      path: c.path,
    },
  });
}

app.get('/session', report);
app.post('/set', (req, res) => {
  Object.assign(req.session, req.body || {});
  report(req, res);
});
app.post('/visit', (req, res) => {
  req.session.visits = (req.session.visits || 0) + 1;
  report(req, res);
});

process.on('SIGTERM', () => {
  redisClient.quit().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});

redisClient
  .connect()
  .then(() => {
    app.listen(Number(port), '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
  })
  .catch((err) => {
    console.error('cannot connect to redis:', err.message);
    process.exit(1);
  });
