// The balancer's dashboard in a real browser: Debian's chromium, headless, driven by puppeteer-core.
// dashboard.c starts three tether-apps (sessions in memory) behind the balancer (sticky cookie,
// session_monitor) and runs this:
//
//   node dashboard.js '{"lb":"http://127.0.0.1:P","admin":"http://127.0.0.1:A","out":"DIR",
//                       "apps":[{"name":"app1","pid":N,"addr":"127.0.0.1:P1"},...]}'
//
// The page must show every server; "drain" clicked on one must show "drain" for it; users (cookie jars here,
// through the balancer) bound to another app lose their session when the test kills that app (SIGKILL),
// and the page's session-loss figure must rise above 0 over the event stream. A screenshot of the page
// goes to DIR/dashboard.png and must not be blank. Then, at 1280x800 and at a phone's size (390x844), every
// server's buttons must lie inside the viewport and take a tap, and nothing may scroll sideways (a phone-size
// screenshot: DIR/dashboard-phone.png);
// axe-core, at both sizes, must find no serious or critical accessibility violation (WCAG 2 A and AA: labels,
// contrast, ...). Exit 0 when all held, 1 otherwise.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const puppeteer = require('puppeteer-core');

const CHROMIUM = process.env.TETHER_CHROMIUM || '/usr/bin/chromium';
const cfg = JSON.parse(process.argv[2] || '{}');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(ok, msg) {
  if (!ok) throw new Error(msg);
}

// One user: its cookies, and the session id and server of its last answer.
async function visit(user) {
  const headers = {};
  if (user.jar.size) headers.Cookie = [...user.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const r = await fetch(cfg.lb + '/whoami', { headers });
  check(r.status === 200, `GET /whoami: ${r.status}`);
  for (const line of r.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const eq = pair.indexOf('=');
    user.jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  const w = await r.json();
  const lost = user.id !== undefined && w.session_id !== user.id;
  user.id = w.session_id;
  user.server = w.server;
  return lost;
}

// axe-core (WCAG 2 A and AA rules) on the page as it is: the violations of serious or critical impact.
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
async function accessibility(page, what) {
  await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
  for (const v of found) console.log(`axe (${what}): ${v.impact} ${v.id} at ${v.nodes.slice(0, 3).join(', ')}`);
  const bad = found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `axe (${what}): ${bad.map((v) => v.id).join(', ')}`);
  console.log(`axe (${what}): no serious or critical violation (${found.length} minor)`);
}

// At a given size: the page does not scroll sideways, and each server's buttons (drain, disable, enable, set
// weight) are inside the viewport once the page is scrolled down to them (nothing scrolled sideways), are
// labelled with their server, are big enough to tap and are what a tap on their centre reaches. At a phone's
// size, one drain button is tapped and a screenshot taken.
async function fits(browser, problems, width, height, shot) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => problems.push(String(e)));
  const touch = width < 600;
  await page.setViewport({ width, height, isMobile: touch, hasTouch: touch, deviceScaleFactor: touch ? 2 : 1 });
  await page.goto(cfg.admin + '/', { waitUntil: 'load' });
  for (const a of cfg.apps) await page.waitForSelector(`tr[data-server="${a.addr}"] .state`);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  check(wide <= width, `at ${width} px the page is ${wide} px wide`);
  for (const a of cfg.apps)
    for (const act of ['drain', 'disable', 'enable', 'weight']) {
      const seen = await page.$eval(`button[data-a="${act}"][data-s="${a.addr}"]`, (b) => {
        // the page scrolls down to it, never sideways: a button reached only by scrolling a table is not counted
        window.scrollBy(0, b.getBoundingClientRect().y - 300);
        const r = b.getBoundingClientRect();
        const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
        return { x: r.x, y: r.y, w: r.width, h: r.height, hit: hit === b, label: b.getAttribute('aria-label') };
      });
      const what = `at ${width} px the ${act} button of ${a.addr}`;
      check(seen.x >= 0 && seen.x + seen.w <= width && seen.y >= 0 && seen.y + seen.h <= height,
        `${what} is outside the viewport: ${JSON.stringify(seen)}`);
      check(seen.hit, `${what} is covered`);
      check(seen.h >= 24 && seen.w >= 24, `${what} is too small to tap`);
      check(seen.label.includes(a.addr), `${what} has a label that does not name it: ${seen.label}`);
    }
  if (touch) {
    const tapped = cfg.apps[2];
    for (let attempt = 1; ; attempt++) {
      try {
        await page.tap(`button[data-a="drain"][data-s="${tapped.addr}"]`);
        break;
      } catch (e) {
        if (attempt >= 5 || !/detached|not clickable|No node/i.test(String(e))) throw e;
        await sleep(50);
      }
    }
    const done = `drain: ${tapped.addr} done`;
    await page.waitForFunction((text) => document.getElementById('msg').textContent === text, {}, done);
    console.log(`at ${width}x${height}: tapped ${tapped.name}'s drain button`);
  }
  console.log(`at ${width}x${height}: every server's buttons inside the viewport, labelled, reachable`);
  await accessibility(page, `${width} px`);
  if (shot) await page.screenshot({ path: path.join(cfg.out, shot), fullPage: true });
  await page.close();
}

async function main() {
  fs.mkdirSync(cfg.out, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-test-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    timeout: 60000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', '--no-proxy-server'],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  const problems = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(String(e)));
  await page.setViewport({ width: 1100, height: 700 });
  try {
    await page.goto(cfg.admin + '/', { waitUntil: 'load' });
    // every server, up, over the live stream
    for (const a of cfg.apps) await page.waitForSelector(`tr[data-server="${a.addr}"] .state.up`);
    check((await page.$eval('#live', (e) => e.textContent)) === 'live', 'the stream is not live');
    console.log('the page shows ' + cfg.apps.map((a) => a.addr).join(', '));

    // users with sessions, spread by the balancer
    const users = Array.from({ length: 12 }, () => ({ jar: new Map() }));
    for (let round = 0; round < 2; round++) for (const u of users) await visit(u);

    // drain the third app from the page
    const drained = cfg.apps[2];
    // the table is redrawn every second: a button found just before a redraw is gone when clicked, so try again
    for (let attempt = 1; ; attempt++) {
      try {
        await page.click(`button[data-a="drain"][data-s="${drained.addr}"]`);
        break;
      } catch (e) {
        if (attempt >= 5 || !/detached|not clickable|No node/i.test(String(e))) throw e;
        await sleep(50);
      }
    }
    await page.waitForFunction(
      (addr) => document.querySelector(`tr[data-server="${addr}"] .state`)?.textContent === 'drain',
      {},
      drained.addr
    );
    console.log(`drained ${drained.name} from the page: ${await page.$eval('#msg', (e) => e.textContent)}`);

    // kill the app of the first user not on the drained one; its users lose their sessions
    const victim = cfg.apps.find((a) => a.name === users.find((u) => u.server !== drained.name).server);
    const bound = users.filter((u) => u.server === victim.name).length;
    process.kill(victim.pid, 'SIGKILL');
    console.log(`killed ${victim.name} (pid ${victim.pid}), ${bound} of ${users.length} users were on it`);
    let lost = 0;
    let shown = 0;
    const until = Date.now() + 8000;
    for (let i = 0; Date.now() < until && (i < users.length * 2 || shown === 0); i++) {
      if (await visit(users[i % users.length])) lost++;
      const losses = await page.$$eval('td.loss', (tds) => tds.map((td) => parseFloat(td.textContent)));
      shown = Math.max(shown, ...losses.filter((x) => !Number.isNaN(x)));
      await sleep(120);
    }
    console.log(`users lost ${lost} sessions; the page showed a session loss of up to ${shown}%`);
    check(lost === bound && lost > 0, `users lost ${lost}, ${bound} were on ${victim.name}`);
    check(shown > 0, 'the session-loss figure never rose');
    check(await page.$('td svg polyline'), 'no sparkline');

    // a screenshot, and it is not blank
    const file = path.join(cfg.out, 'dashboard.png');
    const png = await page.screenshot({ path: file, fullPage: true });
    const blank = await browser.newPage();
    const colors = await blank.evaluate(async (b64) => {
      const img = new Image();
      img.src = 'data:image/png;base64,' + b64;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.width;
      c.height = img.height;
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      const seen = new Set();
      for (let i = 0; i < d.length; i += 4 * 7) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      return seen.size;
    }, Buffer.from(png).toString('base64'));
    console.log(`screenshot ${file}: ${colors} colours`);
    check(colors > 20, 'the screenshot is blank');
    await accessibility(page, '1100 px');
    await fits(browser, problems, 1280, 800, null);
    await fits(browser, problems, 390, 844, 'dashboard-phone.png');
    check(problems.length === 0, 'the page reported errors: ' + problems.join('; '));
    console.log('PASS: every server shown, drained from the page, the session loss seen live, a screenshot, ' +
      'usable at a phone\'s size, no serious accessibility violation');
  } catch (e) {
    console.error('FAIL: ' + e.message);
    await page.screenshot({ path: path.join(cfg.out, 'dashboard-failure.png') }).catch(() => {});
    process.exitCode = 1;
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main();
