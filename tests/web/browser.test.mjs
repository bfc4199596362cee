// End to end in a real browser: the demo page (examples/web, served by the
// gateway with --static) and the browser client (client/web/dist) in
// Debian's Chromium, driven by playwright-core. A change made with
// `items set --notify` shows up in the page; the page survives the gateway
// being killed and restarted on the same port and shows the latest state.
// A screenshot is saved as $TEST_ARTIFACTS_DIR/demo.png.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { ARTIFACTS_DIR, ROOT, Stack, run, skipWithoutGateway } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const DEMO_DIR = path.join(ROOT, 'examples/web');
const CLIENT_DIST = path.join(ROOT, 'client/web/dist');

const skip = skipWithoutGateway ||
  (!fs.existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM}`) ||
  (!fs.existsSync(path.join(DEMO_DIR, 'index.html')) && `no demo page at ${DEMO_DIR}/index.html`);

describe('demo page in Chromium', { skip, timeout: 120000 }, () => {
  let stack;
  let browser;
  let page;
  const pageLog = [];

  const statusText = () => page.evaluate(() => document.querySelector('#status')?.textContent.trim() ?? null);
  const nameOf = (id) => page.evaluate(
    (itemId) => document.querySelector(`#items li[data-id="${itemId}"] .name`)?.textContent ?? null, id);

  /** Waits for a condition in the page; the failure message shows what the page shows. */
  async function waitInPage(what, fn, arg, timeout = 15000) {
    try {
      await page.waitForFunction(fn, arg, { timeout, polling: 50 });
    } catch (err) {
      const shown = await page.evaluate(() => ({
        status: document.querySelector('#status')?.textContent,
        items: [...document.querySelectorAll('#items li')].map((li) => `${li.dataset.id}=${li.querySelector('.name')?.textContent}`),
        notice: document.querySelector('#notice')?.textContent,
      })).catch(() => null);
      throw new Error(`page did not show ${what} within ${timeout} ms: ${err.message}\n` +
        `page shows: ${JSON.stringify(shown)}\npage log:\n${pageLog.slice(-30).join('\n')}\n${stack.logs(15)}`);
    }
  }
  const waitStatus = (text, timeout) => waitInPage(`#status "${text}"`,
    (want) => document.querySelector('#status')?.textContent.trim() === want, text, timeout);
  const waitName = (id, name, timeout) => waitInPage(`item ${id} named "${name}"`,
    ([itemId, want]) => document.querySelector(`#items li[data-id="${itemId}"] .name`)?.textContent === want,
    [id, name], timeout);

  before(async () => {
    await run('npm', ['run', 'build'], { timeout: 90000 });
    assert.ok(fs.existsSync(path.join(CLIENT_DIST, 'entitysync.js')), 'npm run build made client/web/dist/entitysync.js');
    stack = await Stack.start({ gateway: { static: `/=${DEMO_DIR},/lib/=${CLIENT_DIST}` } });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 900, height: 640 } });
    page.on('console', (m) => pageLog.push(`[console.${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => pageLog.push(`[pageerror] ${e.message}`));
    page.on('requestfailed', (r) => pageLog.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
  });

  after(async () => {
    if (page) {
      fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'demo.png'), fullPage: true }).catch(() => {});
    }
    await browser?.close().catch(() => {});
    await stack?.stop();
  });

  test('the page is served by the gateway, goes live and lists the items', async () => {
    const res = await page.goto(`${stack.httpUrl}/`);
    assert.equal(res.status(), 200);
    const lib = await page.request.get(`${stack.httpUrl}/lib/entitysync.js`);
    assert.equal(lib.status(), 200, 'the client is served at /lib/');
    await waitStatus('live');
    await waitName('100', 'Espresso cup');
    await waitName('102', 'Notebook');
  });

  test('a change made with items set --notify shows up', async () => {
    await stack.setItem('100', { name: 'Changed by test' });
    await waitName('100', 'Changed by test', 5000);
  });

  test('the gateway is killed and restarted on the same port: the page reconnects and shows the latest state', async () => {
    await stack.stopGateway('SIGKILL');
    await waitStatus('reconnecting', 5000);
    // Changes while the gateway is down...
    await stack.setItem('100', { name: 'Changed while the gateway was down' });
    await stack.setItem('101', { name: 'Also changed while down' });
    await stack.startGateway(); // same port, same flags
    await waitStatus('live', 20000);
    await waitName('100', 'Changed while the gateway was down', 10000);
    await waitName('101', 'Also changed while down', 10000);
    // ...and after it is back.
    await stack.setItem('100', { name: 'Changed after the restart' });
    await waitName('100', 'Changed after the restart', 5000);
    assert.equal(await statusText(), 'live');
    assert.equal(await nameOf('102'), 'Notebook');
    const errors = pageLog.filter((l) => l.startsWith('[pageerror]'));
    assert.deepEqual(errors, [], 'no uncaught errors in the page');
  });
});
