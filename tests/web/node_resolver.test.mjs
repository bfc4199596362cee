// The migration path from entity-sync, end to end: the Node.js resolver of
// examples/node-resolver (@grpc/grpc-js) behind a real entitysync-server, its
// example config file, the real gateway, and a client that speaks exactly
// entity-sync's WebSocket protocol (legacy mode, no subprotocol). Changes are
// made in the Node resolver's store through its HTTP hook and announced with
// Notify, as a backend would: with the `entitysync notify` CLI and with the
// example's own Node notifier (examples/node-resolver/notify.mjs).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  BINARIES, ROOT, Stack, WsClient, httpRequest, run, skipWithoutGateway,
} from './harness.mjs';

const EXAMPLE_DIR = path.join(ROOT, 'examples/node-resolver');
const SECRET = 'node-secret-4c1e9a';

const SEED = {
  100: { id: '100', name: 'Espresso cup', price_cents: 450, tags: ['kitchen', 'ceramic'] },
  101: { id: '101', name: 'Desk lamp', price_cents: 2999, tags: ['office', 'lighting', 'led'] },
  102: { id: '102', name: 'Notebook', price_cents: 799, tags: ['office', 'paper'] },
};

/** The frames entity-sync clients get for an item: its JSON, then one per tag. */
function itemFrames({ id, name, price_cents, tags }, version) {
  return [JSON.stringify({ id, name, price_cents, version }), ...tags.map((tag) => JSON.stringify({ tag }))];
}

async function texts(ws, count, what) {
  const out = [];
  for (let i = 0; i < count; i += 1) out.push(await ws.nextText({ what: `${what} (frame ${i + 1} of ${count})` }));
  return out;
}

describe('entity-sync client + Node.js resolver', { skip: skipWithoutGateway, timeout: 60000 }, () => {
  let stack;
  let resolver; // the Node resolver process
  let hookUrl; // its HTTP hook
  const clients = [];
  const open = async () => {
    const ws = await WsClient.open(stack.wsUrl());
    clients.push(ws);
    return ws;
  };

  /** Changes an item in the Node resolver's store; returns its new version. */
  const putItem = async (id, fields) => {
    const res = await httpRequest(`${hookUrl}/items/${encodeURIComponent(id)}`, {
      method: 'PUT', body: JSON.stringify(fields),
    });
    assert.equal(res.status, 200, res.body);
    return JSON.parse(res.body).version;
  };
  /** `entitysync notify KEY` on the server's internal port. */
  const cliNotify = (key) => run(BINARIES.cli, [`--target=${stack.internalAddress}`, 'notify', key]);
  /** The example's Node notifier, several keys in one Notify. */
  const nodeNotify = (...keys) => run(process.execPath,
    [path.join(EXAMPLE_DIR, 'notify.mjs'), `--target=${stack.internalAddress}`, ...keys]);

  before(async () => {
    stack = new Stack();
    try {
      resolver = stack.spawn('node-resolver', process.execPath, [
        path.join(EXAMPLE_DIR, 'resolver.mjs'), '--listen=127.0.0.1:0', '--http=127.0.0.1:0']);
      const m = await resolver.waitForOutput(/READY grpc=(\S+) http=(\S+)/);
      hookUrl = `http://${m[2]}`;

      // The example's config file, pointed at the port the resolver got.
      const example = fs.readFileSync(path.join(EXAMPLE_DIR, 'entitysync.textproto'), 'utf8');
      const target = 'target: "127.0.0.1:7072"';
      assert.ok(example.includes(target), `the example config has ${target}`);
      const config = path.join(stack.tmp, 'entitysync.textproto');
      fs.writeFileSync(config, example.replace(target, `target: "${m[1]}"`));
      stack.server = stack.spawn('server', BINARIES.server, [
        `--config=${config}`,
        '--public_address=127.0.0.1:0',
        '--internal_address=127.0.0.1:0',
        '--metrics_address=',
      ]);
      const ports = await stack.server.waitForOutput(
        /public \(Subscribe\) on port (\d+), internal \(Notify, health\) on port (\d+)/);
      stack.publicAddress = `127.0.0.1:${ports[1]}`;
      stack.internalAddress = `127.0.0.1:${ports[2]}`;
      await stack.startGateway({});
    } catch (err) {
      await stack.stop();
      throw err;
    }
  });

  after(async () => {
    for (const ws of clients) ws.close();
    await stack?.stop();
  });

  test('subscribe: the Node resolver\'s rows; change + `entitysync notify`: the new rows', async () => {
    const ws = await open();
    // Byte for byte what entity-sync's README has the client send.
    ws.sendText('{"action":"subscribe","body":{"id":"100","entity":"items"}}');
    assert.deepEqual(await texts(ws, 3, 'snapshot of items/100'), itemFrames(SEED[100], 1),
      'every row the resolver returned is one text frame, in order');

    const version = await putItem('100', { name: 'Node lamp', tags: ['desk'] });
    assert.ok(version > 3, `a new version from the store, got ${version}`);
    const { stdout } = await cliNotify('items/100');
    assert.match(stdout, /accepted 1/);
    assert.deepEqual(await texts(ws, 2, 'rows of items/100 after the change'),
      itemFrames({ ...SEED[100], name: 'Node lamp', tags: ['desk'] }, version));
  });

  test('several keys on one connection; one Notify of the Node notifier for both', async () => {
    const ws = await open();
    ws.sendJson({ action: 'subscribe', body: { entity: 'items', id: '101' } });
    assert.deepEqual(await texts(ws, 4, 'snapshot of items/101'), itemFrames(SEED[101], 2));
    ws.sendJson({ action: 'subscribe', body: { entity: 'items', id: '100' } });
    await ws.take((m) => m?.id === '100', { what: 'snapshot of items/100' });
    ws.drain();

    const v101 = await putItem('101', { price_cents: 1999 });
    const v100 = await putItem('100', { name: 'Node mug', tags: [] });
    const { stdout } = await nodeNotify('items/101', 'items/100');
    assert.match(stdout, /accepted 2/);
    const got101 = await ws.take((m) => m?.id === '101', { what: 'new row of items/101' });
    assert.deepEqual(got101, { id: '101', name: 'Desk lamp', price_cents: 1999, version: v101 });
    const got100 = await ws.take((m) => m?.id === '100', { what: 'new row of items/100' });
    assert.deepEqual(got100, { id: '100', name: 'Node mug', price_cents: 450, version: v100 });
  });

  test('an item with an access list: no or a wrong secret gets error 7, the right one the rows', async () => {
    const version = await putItem('102', { acl: [SECRET] });
    const ws = await open();
    ws.sendJson({ action: 'subscribe', body: { entity: 'items', id: '102' } });
    const denied = await ws.nextJson({ what: 'the error for items/102 without a secret' });
    assert.equal(denied.type, 'error');
    assert.equal(denied.code, 7);
    assert.equal(denied.status, 'PERMISSION_DENIED');
    assert.deepEqual(denied.key, { entity: 'items', id: '102' });

    ws.sendJson({ action: 'secret', body: 'not-the-secret' });
    ws.sendJson({ action: 'subscribe', body: { entity: 'items', id: '102' } });
    const wrong = await ws.nextJson({ what: 'the error for items/102 with a wrong secret' });
    assert.equal(wrong.code, 7);
    assert.equal(wrong.status, 'PERMISSION_DENIED');

    ws.sendJson({ action: 'secret', body: SECRET });
    ws.sendJson({ action: 'subscribe', body: { entity: 'items', id: '102' } });
    assert.deepEqual(await texts(ws, 3, 'items/102 with the secret'), itemFrames(SEED[102], version));
  });

  test('an id the resolver does not know sends nothing, and its rows once it exists', async () => {
    const ws = await open();
    ws.sendJson({ action: 'subscribe', body: { entity: 'items', id: '900' } });
    // One upstream stream, handled in order: once the sentinel's rows are
    // here, the answer for items/900 (nothing: it is "removed") was given.
    ws.sendJson({ action: 'subscribe', body: { entity: 'items', id: '101' } });
    const frames = await texts(ws, 4, 'the frames after subscribing to items/900, then items/101');
    assert.equal(JSON.parse(frames[0]).id, '101', `nothing for an unknown id, got ${frames[0]}`);
    assert.deepEqual(frames.slice(1), SEED[101].tags.map((tag) => JSON.stringify({ tag })));

    const version = await putItem('900', { name: 'Brand new', price_cents: 100, tags: ['new'] });
    await cliNotify('items/900');
    assert.deepEqual(await texts(ws, 2, 'items/900 once it exists'),
      itemFrames({ id: '900', name: 'Brand new', price_cents: 100, tags: ['new'] }, version));
  });

  test('an entity type that is not in the config gets error 5', async () => {
    const ws = await open();
    ws.sendJson({ action: 'subscribe', body: { entity: 'orders', id: '1' } });
    const err = await ws.nextJson({ what: 'the error for orders/1' });
    assert.equal(err.type, 'error');
    assert.equal(err.code, 5);
    assert.equal(err.status, 'NOT_FOUND');
    assert.deepEqual(err.key, { entity: 'orders', id: '1' });
  });

  test('no secret in any output; the resolver stops cleanly on SIGTERM', async () => {
    for (const proc of stack.procs) {
      assert.ok(!proc.output.includes(SECRET), `${proc.name} printed the secret`);
    }
    const exit = await resolver.stop('SIGTERM', { timeout: 5000 });
    assert.deepEqual({ code: exit.code, timedOut: exit.timedOut ?? false }, { code: 0, timedOut: false },
      resolver.tail());
  });
});
