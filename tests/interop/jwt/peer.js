// The Node side of tests/interop/jwt: npm jsonwebtoken 9, used as the seed's login() and authenticate use it.
// One JSON request per line on stdin, one JSON answer per line on stdout:
//   {"op":"sign","payload":{...},"key":"secret or PEM","options":{...}}  -> {"token":"..."} | {"error":"..."}
//   {"op":"verify","token":"...","key":"...","options":{...}}           -> {"ok":true,"payload":{...}}
//                                                                        | {"ok":false,"name":"...","message":"..."}
//   {"op":"keys","type":"rsa"|"ec","options":{...},"pub":"spki","priv":"pkcs8"} -> {"public":PEM,"private":PEM}
'use strict';
const readline = require('readline');
const crypto = require('crypto');
const jwt = require('jsonwebtoken');

function handle(req) {
  if (req.op === 'sign') return { token: jwt.sign(req.payload, req.key, req.options || {}) };
  if (req.op === 'verify') {
    try {
      return { ok: true, payload: jwt.verify(req.token, req.key, req.options || {}) };
    } catch (e) {
      return { ok: false, name: e.name, message: e.message };
    }
  }
  if (req.op === 'keys') {
    const opts = Object.assign({}, req.options || {}, {
      publicKeyEncoding: { type: req.pub || 'spki', format: 'pem' },
      privateKeyEncoding: { type: req.priv || 'pkcs8', format: 'pem' },
    });
    const { publicKey, privateKey } = crypto.generateKeyPairSync(req.type, opts);
    return { public: publicKey, private: privateKey };
  }
  return { error: 'unknown op ' + req.op };
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let res;
  try {
    res = handle(JSON.parse(line));
  } catch (e) {
    res = { error: String((e && e.message) || e) };
  }
  process.stdout.write(JSON.stringify(res) + '\n');
});
