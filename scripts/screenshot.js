// One screenshot with Debian's chromium through puppeteer-core (tests/browser's npm packages), for
// scripts/screenshots:  node scripts/screenshot.js URL OUT.png WIDTH HEIGHT WAIT_MS [SELECTOR]
// The page is given WAIT_MS of real time before the shot (the dashboard's rates need a few seconds of its
// event stream); with SELECTOR, it then prints "ready" on its standard output (the caller's cue to do what
// the page should show), waits (up to 60 s) until an element matches SELECTOR, and shoots at once (the
// dashboard's session-loss figure is red for the one second its rate is high). The shot is the viewport,
// checked not to be blank. A WIDTH under 600 is a phone: a touch screen at twice the pixel density.
'use strict';

const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const puppeteer = require(path.join(__dirname, '..', 'tests', 'browser', 'node_modules', 'puppeteer-core'));

const [url, out, width, height, waitMs, selector] = process.argv.slice(2);
if (!url || !out) {
  console.error('usage: node scripts/screenshot.js URL OUT.png [WIDTH] [HEIGHT] [WAIT_MS]');
  process.exit(2);
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-screenshot-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    userDataDir: profile,
    timeout: 60000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', '--no-proxy-server'],
  });
  try {
    const page = await browser.newPage();
    const phone = Number(width || 1100) < 600;
    await page.setViewport({ width: Number(width || 1100), height: Number(height || 800), isMobile: phone,
      hasTouch: phone, deviceScaleFactor: phone ? 2 : 1 });
    await page.goto(url, { waitUntil: 'load', timeout: 20000 });
    await new Promise((r) => setTimeout(r, Number(waitMs || 0)));
    if (selector) {
      console.log('ready');
      await page.waitForSelector(selector, { timeout: 60000 });
    }
    const png = await page.screenshot({ path: out });
    if (png.length < 10000) throw new Error(`${out}: ${png.length} bytes, a blank page?`);
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error('screenshot.js:', e.message || e);
  process.exit(1);
});
