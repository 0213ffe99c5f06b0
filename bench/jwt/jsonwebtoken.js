// bench/jwt's Node peer: npm jsonwebtoken 9 verifying the same tokens as libtether and libjwt, one thread.
// Input: a JSON file {seconds, cells: [{alg, key, secret, tokens}]}; output: {"HS256": verifications per
// CPU second, ...}.
// Keys become KeyObjects once (the fastest way to use jsonwebtoken), as the C verifiers parse theirs once.
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const jwt = require(path.join(__dirname, '../../tests/interop/jwt/node_modules/jsonwebtoken'));

const input = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = {};
for (const cell of input.cells) {
  const key = cell.secret ? crypto.createSecretKey(Buffer.from(cell.key)) : crypto.createPublicKey(cell.key);
  const opts = { algorithms: [cell.alg] };
  const toks = cell.tokens;
  // CPU time of the process (user + system, the garbage collector's threads included), as the C cells
  // count their thread's CPU time; 20 times the budget of wall clock at most.
  let n = 0;
  const c0 = process.cpuUsage();
  const w0 = process.hrtime.bigint();
  let cpu = 0;
  do {
    for (let k = 0; k < 16; k++, n++) jwt.verify(toks[n % toks.length], key, opts);
    const c = process.cpuUsage(c0);
    cpu = (c.user + c.system) / 1e6;
  } while (cpu < input.seconds && Number(process.hrtime.bigint() - w0) / 1e9 < 20 * input.seconds);
  out[cell.alg] = n / cpu;
}
process.stdout.write(JSON.stringify(out));
