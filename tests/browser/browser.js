// The demo in a real browser: Debian's chromium, headless, driven by puppeteer-core (no browser download),
// through the balancer in front of three tether-apps. browser.c starts the processes and runs this:
//
//   node browser.js '{"url":"https://127.0.0.1:PORT","plain":"http://127.0.0.1:PORT2","spki":"BASE64",
//                     "apps":{"app1":{"pid":N,"port":P},...},"out":"DIR"}'
//
// spki (optional): the base64 SHA-256 of the server certificate's SubjectPublicKeyInfo, which chromium then
// trusts (--ignore-certificate-errors-spki-list) without a system store. Over https the session cookie must
// be Secure; plain (optional) is the balancer's http listen, where a new session's cookie must not be.
//
// Open /, log in with the form, add to the cart with the form, reload ten times: the visit counter goes up by one each time whatever
// app answered. Stop the app that served the last page (SIGTERM to its pid), reload: the counter goes on,
// from another app. A screenshot of the last page goes to DIR/browser-demo.png (and of the page at a
// failure to DIR/browser-failure.png). Exit 0 when all held, 1 otherwise.
'use strict';

const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const puppeteer = require('puppeteer-core');

const CHROMIUM = process.env.TETHER_CHROMIUM || '/usr/bin/chromium';
const cfg = JSON.parse(process.argv[2] || '{}');
if (!cfg.url || !cfg.apps || !cfg.out) {
  console.error('usage: node browser.js \'{"url":...,"apps":{...},"out":DIR}\'');
  process.exit(2);
}

function check(ok, msg) {
  if (!ok) throw new Error(msg);
}

// Resolves once nothing accepts on port any more (the app has stopped), within ms.
async function portClosed(port, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const open = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
      s.setTimeout(500, () => {
        s.destroy();
        resolve(true);
      });
    });
    if (!open) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

async function main() {
  fs.mkdirSync(cfg.out, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-test-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    timeout: 60000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      '--no-proxy-server',
      ...(cfg.spki ? [`--ignore-certificate-errors-spki-list=${cfg.spki}`] : []),
    ],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.setViewport({ width: 900, height: 600 });
  const trail = [];
  const read = async (what) => {
    const s = await page.evaluate(() => {
      const text = (sel) => {
        const e = document.querySelector(sel);
        return e ? e.textContent : null;
      };
      return { server: text('#server'), visits: Number(text('#visits')), user: text('#user'), cart: text('#cart') };
    });
    trail.push(`${what}:${s.server}:${s.visits}`);
    return s;
  };
  const load = async (what, action) => {
    const resp = await action();
    check(resp && resp.status() === 200, `${what}: status ${resp ? resp.status() : 'none'}`);
    return read(what);
  };

  try {
    let s = await load('open', () => page.goto(`${cfg.url}/`, { waitUntil: 'load' }));
    check(s.server in cfg.apps, `open: answered by ${s.server}, not one of the apps`);
    check(s.visits === 1, `open: visits ${s.visits}, want 1`);
    if (cfg.url.startsWith('https:')) {
      // the https listen serves HTTP/2 (ALPN h2): the page came over it
      const proto = await page.evaluate(() => performance.getEntries()[0].nextHopProtocol);
      check(proto === 'h2', `open: the page came over ${proto}, want h2`);
    }
    check(s.user === null, `open: already logged in as ${s.user}`);

    // the login form: type a name, press the button (POST /login, 303 to /)
    await page.$eval('#name', (e) => {
      e.value = '';
    });
    await page.type('#name', 'alice');
    s = await load('login', async () => {
      const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#login')]);
      return resp;
    });
    check(s.user === 'alice', `login: user ${s.user}, want alice`);
    check(s.visits === 2, `login: visits ${s.visits}, want 2`);
    const cookies = await page.cookies();
    const sid = cookies.find((c) => c.name === 'connect.sid');
    check(sid && sid.httpOnly, 'login: no HttpOnly connect.sid cookie in the browser');
    const https = cfg.url.startsWith('https:');
    const scheme = https ? 'https' : 'http';
    check(sid.secure === https, `login: connect.sid is ${sid.secure ? '' : 'not '}Secure over ${scheme}`);
    check(sid.expires > Date.now() / 1000 + 3000, `login: connect.sid expires ${sid.expires}, want about 1 h ahead`);

    // the cart form: one item (POST /cart, 303 to /, a page load that counts)
    s = await load('cart', async () => {
      const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#add')]);
      return resp;
    });
    check(s.cart === 'book', `cart: ${s.cart}, want book`);
    check(s.visits === 3, `cart: visits ${s.visits}, want 3`);

    const servers = new Set([s.server]);
    let visits = s.visits;
    for (let i = 1; i <= 10; i++) {
      s = await load(`reload${i}`, () => page.reload({ waitUntil: 'load' }));
      check(s.visits === visits + 1, `reload ${i}: visits ${s.visits} after ${visits} (from ${s.server})`);
      check(s.user === 'alice' && s.cart === 'book', `reload ${i}: user ${s.user}, cart ${s.cart} (from ${s.server})`);
      visits = s.visits;
      servers.add(s.server);
    }
    check(servers.size >= 2, `ten reloads all answered by ${[...servers]}: no balancing to see`);

    // stop the app that served the last page
    const last = s.server;
    const victim = cfg.apps[last];
    check(victim, `no pid for ${last}`);
    process.kill(victim.pid, 'SIGTERM');
    check(await portClosed(victim.port, 15000), `${last} (pid ${victim.pid}) still listens 15 s after SIGTERM`);
    console.log(`stopped ${last} pid ${victim.pid}`);

    for (let i = 1; i <= 3; i++) {
      s = await load(`after-stop${i}`, () => page.reload({ waitUntil: 'load' }));
      check(s.server !== last, `after stopping ${last}, ${last} still answered`);
      check(s.visits === visits + 1, `after stopping ${last}: visits ${s.visits} after ${visits} (from ${s.server})`);
      check(s.user === 'alice' && s.cart === 'book', `after stopping ${last}: user ${s.user}, cart ${s.cart}`);
      visits = s.visits;
    }
    if (cfg.plain) {
      // the plain listen keeps working, and there the new session's cookie is not Secure (--cookie-secure auto)
      const resp = await fetch(`${cfg.plain}/`);
      const set = resp.headers.get('set-cookie') || '';
      check(resp.status === 200, `plain http: status ${resp.status}`);
      check(/connect\.sid=/.test(set) && !/;\s*secure/i.test(set), `plain http: Set-Cookie ${set}`);
    }
    const shot = path.join(cfg.out, 'browser-demo.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`served: ${trail.join(' ')}`);
    console.log(`screenshot: ${shot}`);
    console.log(`PASS: visits went 1..${visits} across ${[...servers].sort().join(', ')}; ${last} stopped, the count went on`);
  } catch (e) {
    console.log(`served: ${trail.join(' ')}`);
    const shot = path.join(cfg.out, 'browser-failure.png');
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.log(`FAIL: ${e.message} (screenshot of the page: ${shot})`);
    process.exitCode = 1;
  } finally {
    await browser.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.log(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
