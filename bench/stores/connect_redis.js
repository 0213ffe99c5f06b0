// The peer of bench_stores: connect-redis v7 (the seed's store) doing what express-session does with a
// session in each request, CONC sessions in flight as concurrent async loops in this one process:
//   store.get(sid) -> store.createSession (Session + Cookie, as express-session inflates it) -> visits += 1
//   -> touch the cookie -> store.set(sid, session)  (JSON.stringify, SET key value EX ttl)
//   node connect_redis.js REDIS_PORT CONC SECONDS MAX_OPS VALUE_SIZE [WARMUP_SECONDS [REDIS_PID]]
// REDIS_PORT cluster:P1,P2,..: a Redis Cluster through node-redis's createCluster (those nodes as roots);
// REDIS_PID may then list every server's pid, comma-separated.
// After WARMUP_SECONDS of the same loops (not measured: V8's JIT warms up), the measured window starts.
// Prints one JSON line: {peer, conc, ops, errors, seconds, p50_us, p99_us, value_bytes, cpu_us,
// server_cpu_us}: CPU time (user + system) over the measured window of this process and of REDIS_PID.
// The npm packages are tests/interop's (package-lock.json there).
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { createRequire } = require('module');

const requireInterop = createRequire(path.resolve(__dirname, '../../tests/interop/package.json'));
const { Session, Cookie } = requireInterop('express-session');
const RedisStore = requireInterop('connect-redis').default;
const { createClient, createCluster } = requireInterop('redis');
// connect-redis's "exports" hides its package.json: read it from the folder its entry point is in
const peerVersion = JSON.parse(
  fs.readFileSync(path.resolve(path.dirname(requireInterop.resolve('connect-redis')), '../../package.json'), 'utf8')
).version;

const [redisPort, concArg, secondsArg, maxOpsArg, valueSizeArg, warmupArg, redisPid] = process.argv.slice(2);
if (!valueSizeArg) {
  console.error('usage: node connect_redis.js REDIS_PORT CONC SECONDS MAX_OPS VALUE_SIZE [WARMUP_SECONDS [REDIS_PID]]');
  process.exit(2);
}
const conc = Number(concArg);
const seconds = Number(secondsArg);
const maxOps = Number(maxOpsArg);
const valueSize = Number(valueSizeArg);
const warmup = Number(warmupArg || 0);
const MAX_AGE_MS = 3600000;
const CLK_TCK = 100; // USER_HZ on Linux

// CPU time of other processes (comma-separated pids) from /proc/PID/stat (utime + stime), in microseconds,
// or null.
function procCpuUs(pids) {
  if (!pids) return null;
  let total = 0;
  for (const pid of String(pids).split(',')) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
    } catch (e) {
      return null;
    }
  }
  return total;
}

function promisify(fn) {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

// A session as express-session generates it (the app's fields padded to VALUE_SIZE bytes of JSON, the
// same object bench_stores builds).
function newSession(sid, idx) {
  const req = { sessionID: sid };
  const s = new Session(req);
  s.cookie = new Cookie({ maxAge: MAX_AGE_MS, httpOnly: true, secure: false, path: '/' });
  s.visits = 0;
  s.user = `bench-user-${idx}`;
  s.pad = '';
  const base = JSON.stringify(s).length;
  s.pad = 'x'.repeat(Math.max(0, valueSize - base));
  return s;
}

async function main() {
  const cluster = redisPort.startsWith('cluster:');
  const client = cluster
    ? createCluster({ rootNodes: redisPort.slice(8).split(',').map((p) => ({ url: `redis://127.0.0.1:${p}` })) })
    : createClient({ socket: { host: '127.0.0.1', port: Number(redisPort), connectTimeout: 5000 } });
  client.on('error', (err) => console.error('redis:', err.message));
  await client.connect();
  // connect-redis 7 tells node-redis from ioredis by scanIterator, which the cluster client lacks: without it,
  // it would send SET without the TTL (tests/interop/cluster_peer.js)
  if (cluster) client.scanIterator = async function* scanIterator() {};
  const store = new RedisStore({ client });

  const sids = [];
  let valueBytes = 0;
  for (let i = 0; i < conc; i++) {
    const sid = crypto.randomBytes(24).toString('base64url');
    const s = newSession(sid, i);
    valueBytes = JSON.stringify(s).length;
    await promisify((cb) => store.set(sid, s, cb));
    sids.push(sid);
  }

  const lat = [];
  let ops = 0;
  let errors = 0;
  let record = false;
  let deadline = 0n;

  async function roundTrip(sid) {
    const data = await promisify((cb) => store.get(sid, cb));
    if (!data) throw new Error('session lost');
    const req = { sessionID: sid };
    const sess = store.createSession(req, data);
    sess.visits += 1;
    sess.touch();
    await promisify((cb) => store.set(sid, sess, cb));
  }

  async function loop(sid) {
    for (let i = 0; ; i++) {
      const start = process.hrtime.bigint();
      if ((record ? ops : i) >= maxOps || start >= deadline) return;
      if (record) ops++;
      try {
        await roundTrip(sid);
      } catch (err) {
        if (record) errors++;
      }
      if (record) lat.push(Number(process.hrtime.bigint() - start) / 1000);
    }
  }
  deadline = process.hrtime.bigint() + BigInt(Math.round(warmup * 1e9));
  await Promise.all(sids.map(loop));
  record = true;
  const cpu0 = process.cpuUsage();
  const srv0 = procCpuUs(redisPid);
  const t0 = process.hrtime.bigint();
  deadline = t0 + BigInt(Math.round(seconds * 1e9));
  await Promise.all(sids.map(loop));
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const srv1 = procCpuUs(redisPid);
  await client.quit();

  lat.sort((a, b) => a - b);
  const pct = (p) => (lat.length ? lat[Math.round(p * (lat.length - 1))] : 0);
  console.log(
    JSON.stringify({
      peer: `${cluster ? 'createCluster ' : ''}${peerVersion} (Node ${process.versions.node})`,
      conc,
      ops,
      errors,
      seconds: elapsed,
      p50_us: pct(0.5),
      p99_us: pct(0.99),
      value_bytes: valueBytes,
      cpu_us: cpu.user + cpu.system,
      server_cpu_us: srv0 !== null && srv1 !== null ? srv1 - srv0 : null,
    })
  );
}

main().catch((err) => {
  console.error('connect_redis.js:', err.message);
  process.exit(1);
});
