// connect-redis 7 over node-redis 4's createCluster, as the redis-cluster interop test's Node peer.
//   node cluster_peer.js get PORT SID          prints {"sess": <the session or null>, "ttl": <TTL of sess:SID>}
//   node cluster_peer.js set PORT SID MAXAGE_MS  saves {"cookie": {...}, "user": "node"} and prints "ok"
// connect-redis 7 tells node-redis from ioredis by `scanIterator`, which the cluster client lacks: without the
// marker it calls set(key, val, "EX", ttl), which node-redis's cluster takes as SET without a TTL. The marker
// makes it use set(key, val, {EX: ttl}), what connect-redis does with a single node-redis client.
'use strict';

const RedisStore = require('connect-redis').default;
const { createCluster } = require('redis');

async function main() {
  const [mode, port, sid, maxAge] = process.argv.slice(2);
  const cluster = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${port}` }] });
  cluster.on('error', (err) => console.error('redis:', err.message));
  await cluster.connect();
  cluster.scanIterator = async function* scanIterator() {}; // the marker (see above); never called here
  const store = new RedisStore({ client: cluster });
  const call = (fn, ...args) => new Promise((ok, ko) => fn.call(store, ...args, (e, v) => (e ? ko(e) : ok(v))));
  if (mode === 'get') {
    const sess = await call(store.get, sid);
    const ttl = await cluster.ttl(`sess:${sid}`);
    console.log(JSON.stringify({ sess: sess || null, ttl }));
  } else {
    const ms = Number(maxAge);
    const cookie = { originalMaxAge: ms, expires: new Date(Date.now() + ms).toISOString(), httpOnly: true, path: '/' };
    await call(store.set, sid, { cookie, user: 'node' });
    console.log('ok');
  }
  await cluster.quit();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
