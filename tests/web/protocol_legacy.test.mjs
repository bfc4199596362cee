// Legacy mode (no subprotocol, or `entity-sync`): entity-sync's JSON protocol,
// unchanged. Every row of an update is its own text frame with the row's
// bytes as they are; problems are error objects. See PROTOCOL.md.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { SEEDED, Stack, WsClient, delay, httpRequest, skipWithoutGateway } from './harness.mjs';

const SECRET = 'letmein-legacy-7f3a';

/** The frames an item is sent as: its JSON row, then one row per tag. */
function itemFrames(item, version) {
  return [Stack.itemJson({ ...item, version }), ...item.tags.map((tag) => JSON.stringify({ tag }))];
}

/** Reads `count` frames, which must all be text. */
async function texts(ws, count, what) {
  const out = [];
  for (let i = 0; i < count; i += 1) out.push(await ws.nextText({ what: `${what} (frame ${i + 1} of ${count})` }));
  return out;
}

describe('legacy WebSocket protocol', { skip: skipWithoutGateway, timeout: 60000 }, () => {
  let stack;
  const clients = [];
  const open = async (opts) => {
    const ws = await WsClient.open(stack.wsUrl(), opts);
    clients.push(ws);
    return ws;
  };

  before(async () => {
    stack = await Stack.start();
  });

  after(async () => {
    for (const ws of clients) ws.close();
    await stack?.stop();
  });

  test('healthz answers 200 ok', async () => {
    const res = await httpRequest(`${stack.httpUrl}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(res.body.trim(), 'ok');
  });

  test("README exchange: subscribe, get every row as a text frame, then the change's rows", async () => {
    const ws = await open();
    assert.equal(ws.protocol, '', 'no subprotocol was offered, none is selected');
    // Byte for byte what entity-sync's README sends.
    ws.sendText('{"action":"subscribe","body":{"id":"100","entity":"items"}}');
    const snapshot = await texts(ws, 3, 'snapshot of items/100');
    assert.deepEqual(snapshot, itemFrames(SEEDED[100], 1),
      'each row of the item arrives as its own frame, bytes as the resolver returned them, in order');

    const version = await stack.setItem('100', { name: 'Legacy lamp' });
    const change = await texts(ws, 3, 'rows of the change of items/100');
    assert.deepEqual(change, itemFrames({ ...SEEDED[100], name: 'Legacy lamp' }, version));
  });

  test('the path without the trailing slash and the entity-sync subprotocol are legacy too', async () => {
    const ws = await WsClient.open(stack.wsUrl('/ws/entity-sync'), { protocols: ['entity-sync'] });
    clients.push(ws);
    assert.equal(ws.protocol, 'entity-sync');
    ws.sendJson({ action: 'subscribe', body: { id: '101', entity: 'items' } });
    const frames = await texts(ws, 4, 'snapshot of items/101');
    assert.deepEqual(frames, itemFrames(SEEDED[101], 2));
  });

  test('secret action: a protected item is denied (code 7) until the secret is sent', async () => {
    await stack.setItem('102', { acl: [SECRET] });
    const ws = await open();
    ws.sendJson({ action: 'subscribe', body: { id: '102', entity: 'items' } });
    const denied = await ws.nextJson({ what: 'the error for items/102 without credentials' });
    assert.equal(denied.type, 'error');
    assert.equal(denied.code, 7);
    assert.equal(denied.status, 'PERMISSION_DENIED');
    assert.deepEqual(denied.key, { entity: 'items', id: '102' });
    assert.equal(typeof denied.message, 'string');

    ws.sendJson({ action: 'secret', body: SECRET });
    ws.sendJson({ action: 'subscribe', body: { id: '102', entity: 'items' } });
    const first = JSON.parse(await ws.nextText({ what: 'items/102 after the secret' }));
    assert.equal(first.id, '102');
    assert.equal(first.name, 'Notebook');
    assert.deepEqual(await texts(ws, 2, 'tags of items/102'), ['{"tag":"office"}', '{"tag":"paper"}']);
  });

  test('unsubscribe stops the frames of that key', async () => {
    const watcher = await open(); // stays subscribed: proves the change was delivered
    watcher.sendJson({ action: 'subscribe', body: { id: '101', entity: 'items' } });
    await watcher.take((m) => m?.id === '101', { what: 'watcher snapshot of items/101' });
    watcher.drain();

    const ws = await open();
    ws.sendJson({ action: 'subscribe', body: { id: '101', entity: 'items' } });
    await ws.take((m) => m?.id === '101', { what: 'snapshot of items/101' });
    ws.sendJson({ action: 'unsubscribe', body: { id: '101', entity: 'items' } });
    // Legacy has no ack: a later subscribe's snapshot shows the unsubscribe
    // went through (one upstream stream, handled in order).
    ws.sendJson({ action: 'subscribe', body: { id: '100', entity: 'items' } });
    await ws.take((m) => m?.id === '100', { what: 'snapshot of items/100 (sentinel)' });
    ws.drain();
    const mark = ws.frames.length;

    await stack.setItem('101', { name: 'Unwatched lamp' });
    await watcher.take((m) => m?.name === 'Unwatched lamp', { what: 'the change on the still subscribed connection' });
    await delay(300);
    const leaked = ws.since(mark).filter((m) => m?.id === '101' || m?.tag === 'lighting');
    assert.deepEqual(leaked, [], 'no rows of items/101 after unsubscribe');
    assert.ok(ws.isOpen);
  });

  test('another action without a pass-through backend is an error with code 9', async () => {
    const ws = await open();
    ws.sendJson({ action: 'add-to-cart', body: { id: '100', quantity: 2 } });
    const err = await ws.nextJson({ what: 'the answer to a pass-through message' });
    assert.equal(err.type, 'error');
    assert.equal(err.code, 9);
    assert.equal(err.status, 'FAILED_PRECONDITION');
    assert.equal(err.request_id, 0);
    // The connection goes on.
    ws.sendJson({ action: 'subscribe', body: { id: '100', entity: 'items' } });
    const row = await ws.nextJson({ what: 'items/100 after the error' });
    assert.equal(row.id, '100');
  });

  test('a deleted item sends nothing; the connection stays open', async () => {
    const version = await stack.setItem('300', { name: 'Short-lived', price_cents: 1, tags: [] });
    const ws = await open();
    ws.sendJson({ action: 'subscribe', body: { id: '300', entity: 'items' } });
    assert.equal(await ws.nextText({ what: 'items/300 snapshot' }),
      Stack.itemJson({ id: '300', name: 'Short-lived', price_cents: 1, version }));
    await stack.deleteItem('300');
    // Then a change of another key on the same connection arrives, and
    // nothing came for the deletion before it.
    ws.sendJson({ action: 'subscribe', body: { id: '100', entity: 'items' } });
    const next = await ws.nextJson({ what: 'the next frame after the deletion' });
    assert.equal(next.id, '100', `expected items/100's row, got ${JSON.stringify(next)}`);
    await texts(ws, 2, 'tags of items/100');
    await delay(200);
    assert.equal(ws.describePending(), '[]', 'nothing is sent for a removed entity');
  });

  test('the secret never appears in the gateway output', () => {
    assert.ok(!stack.gateway.output.includes(SECRET), 'the gateway logged a secret');
  });
});
