// Prints JSON.stringify of many values, one per line, for tests/interop/json_codec.c, which checks that
// libtether writes the same bytes for the same value. Usage: node json_codec.js [COUNT] [SEED]
// The values: numbers at the edges of Number::toString's layouts, random doubles from random bit
// patterns, strings with every control character, non-ASCII and astral characters, and objects shaped like
// express-session's sessions (a cart of nested objects and arrays). No lone surrogates: libtether's
// strings are UTF-8, which cannot hold them, and no U+0000, which it refuses (as jansson does).
'use strict';
const count = Number(process.argv[2] || 3000);
let seed = Number(process.argv[3] || 12345) >>> 0;
function rnd() { // xorshift32: the same values on every run
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed;
}
const pick = (a) => a[rnd() % a.length];

const fixed = [
  0, -0, 1, -1, 0.1, 0.2, 0.3, 0.1 + 0.2, 1 / 3, 2 / 3, 1e21, 1e20, 123456789012345680000, 1e-6, 1e-7,
  1.5e-7, 0.000001, 0.0000012345, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
  Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, 2 ** 63, -(2 ** 63), 2 ** 64, 4294967295,
  100, 1e2, 1e15, 1e16, 1e17, 9.999999999999999e20, 1.0000000000000001e21, 3.14159, -2.5, 1.25e-5, 123e-20,
  5e-7, 4.35, 0.5, 1e300, 1e-300, 2 ** -1074 * 3, 2 ** -1022, 2 ** 1023, 9007199254740993, 295147905179352830000,
  NaN, Infinity, -Infinity, true, false, null, '', 'plain', 'quote " backslash \\ slash /',
  '\b\f\n\r\t\v\u0001\u001f\u007f\u0080', 'zo\u00eb \u20ac \u2028 \u2029 \ufeff \ud83d\ude00 \uffff',
  [], {}, [[]], [{}], { a: [1, { b: null }] }, { '': 1, ' ': 2, '"': 3, '\n': 4 },
];

function randomDouble() {
  const v = new DataView(new ArrayBuffer(8));
  v.setUint32(0, rnd());
  v.setUint32(4, rnd());
  return v.getFloat64(0);
}

function randomNumber() {
  switch (rnd() % 6) {
    case 0: return randomDouble();
    case 1: return (rnd() % 2000000) - 1000000;
    case 2: return ((rnd() % 100000) / 100) * (rnd() % 2 ? 1 : -1); // prices
    case 3: return rnd() * 2 ** (rnd() % 80) * (rnd() % 2 ? 1 : -1); // big integers and beyond 1e21
    case 4: return (rnd() % 1000) * 10 ** -((rnd() % 12) + 1); // small ones near 1e-6
    default: return 1764930000000 + (rnd() % 100000); // epoch ms
  }
}

function randomString() {
  const pieces = ['a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\u0001', '\u001e', '\u007f', '\u00e9', '\u0800',
    '\u2028', '\ud83c\udf55', 'cart', '\u{10ffff}', '<', '&'];
  let s = '';
  const n = rnd() % 12;
  for (let i = 0; i < n; i++) s += pick(pieces);
  if (rnd() % 4 === 0) s += String.fromCharCode(1 + (rnd() % 31));
  return s;
}

function randomValue(depth) {
  const k = rnd() % (depth > 3 ? 4 : 7);
  if (k === 0) return randomNumber();
  if (k === 1) return randomString();
  if (k === 2) return pick([true, false, null]);
  if (k === 3) return randomNumber();
  if (k === 4) return Array.from({ length: rnd() % 5 }, () => randomValue(depth + 1));
  const o = {};
  const n = rnd() % 6;
  for (let i = 0; i < n; i++) o[randomString() || 'k' + i] = randomValue(depth + 1);
  return o;
}

function session() { // what an express-session app keeps besides its cookie
  return {
    user: pick(['bob', 'zo\u00eb', 'a"b']),
    visits: rnd() % 1000,
    cart: Array.from({ length: rnd() % 4 }, () => ({
      sku: 'S' + (rnd() % 1000), qty: rnd() % 5 + 1, price: (rnd() % 100000) / 100, tags: ['x', randomString()],
    })),
    flash: rnd() % 2 ? null : { info: [randomString()] },
    lastSeen: new Date(1700000000000 + rnd() * 1000).toISOString(),
  };
}

const out = [];
for (const v of fixed) out.push(JSON.stringify(v));
for (let i = 0; i < count; i++) {
  const v = i % 5 === 0 ? session() : i % 2 ? randomNumber() : randomValue(0);
  out.push(JSON.stringify(v));
}
process.stdout.write(out.join('\n') + '\n');
