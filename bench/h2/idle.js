// Idle HTTP/2 connections for bench/h2/run (IDLE=N): opens N TLS h2 connections to 127.0.0.1:PORT, one GET on
// each (at most 100 at a time), then holds them all open and idle; prints "ready OK FAILED" and waits until
// its stdin closes, then closes them. Node's own http2 module: no npm package needed.
'use strict';
const http2 = require('http2');
const [port, total] = [Number(process.argv[2]), Number(process.argv[3] || 2000)];
const sessions = [];
let ok = 0, failed = 0, next = 0, running = 0;

function one() {
  const s = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
  s.on('error', () => {});
  sessions.push(s);
  const done = (good) => {
    if (good) ok++; else failed++;
    running--;
    pump();
  };
  const req = s.request({ ':path': '/' });
  let status = 0;
  req.on('response', (h) => { status = h[':status']; });
  req.on('data', () => {});
  req.on('end', () => done(status === 200));
  req.on('error', () => done(false));
  req.end();
}

function pump() {
  while (running < 100 && next < total) {
    next++;
    running++;
    one();
  }
  if (running === 0 && next === total) {
    process.stdout.write(`ready ${ok} ${failed}\n`);
    process.stdin.resume();
    process.stdin.on('end', () => { for (const s of sessions) s.destroy(); process.exit(0); });
  }
}
pump();
