// Enveloped JSON mode (subprotocol entitysync.v1.json): every frame is one
// JSON object with a `type`; acks echo request_id; updates carry key,
// version and rows. See PROTOCOL.md.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { SEEDED, Stack, WsClient, delay, skipWithoutGateway } from './harness.mjs';

const PROTOCOL = 'entitysync.v1.json';
const MAX_SUBSCRIPTIONS = 4;
const SECRET = 'letmein-enveloped-91c2';

const key = (id, entity = 'items') => ({ entity, id });
const isUpdate = (id) => (m) => m?.type === 'update' && m.key?.entity === 'items' && m.key?.id === id;

/** The rows an item is sent as, in enveloped form. */
function itemRows(item, version) {
  return [
    { content_type: 'application/json', json: { id: item.id, name: item.name, price_cents: item.price_cents, version } },
    ...item.tags.map((tag) => ({ content_type: 'application/json', json: { tag } })),
  ];
}

describe('enveloped JSON WebSocket protocol', { skip: skipWithoutGateway, timeout: 90000 }, () => {
  let stack;
  const clients = [];
  const open = async (opts = {}) => {
    const ws = await WsClient.open(stack.wsUrl(), { protocols: [PROTOCOL], ...opts });
    clients.push(ws);
    return ws;
  };
  const ack = (ws, type, requestId, what) =>
    ws.take((m) => m?.type === type && m.request_id === requestId, { what: what ?? `${type} #${requestId}` });

  before(async () => {
    stack = await Stack.start({ gateway: { max_subscriptions: MAX_SUBSCRIPTIONS } });
  });

  after(async () => {
    for (const ws of clients) ws.close();
    await stack?.stop();
  });

  test('the subprotocol is selected', async () => {
    const ws = await open({ protocols: ['unknown.v9', PROTOCOL, 'entitysync.v1.proto'] });
    assert.equal(ws.protocol, PROTOCOL, 'the gateway picks the first subprotocol it knows');
  });

  test('subscribe: subscribed ack, snapshot update, then a higher version on change', async () => {
    const ws = await open();
    ws.sendJson({ action: 'subscribe', request_id: 1, body: key('100') });
    assert.deepEqual(await ws.nextJson({ what: 'subscribed' }),
      { type: 'subscribed', request_id: 1, key: key('100') });

    const snapshot = await ws.nextJson({ what: 'snapshot' });
    assert.equal(snapshot.type, 'update');
    assert.deepEqual(snapshot.key, key('100'));
    assert.equal(typeof snapshot.version, 'number', 'a version below 2^53 is a JSON number');
    assert.equal(snapshot.version, 1);
    assert.equal(snapshot.removed, false);
    assert.deepEqual(snapshot.rows, itemRows(SEEDED[100], 1));

    const version = await stack.setItem('100', { name: 'Enveloped cup', price_cents: 500 });
    const update = await ws.take(isUpdate('100'), { what: 'the update after items set' });
    assert.ok(update.version > snapshot.version, `version ${update.version} > ${snapshot.version}`);
    assert.equal(update.version, version);
    assert.equal(update.removed, false);
    assert.deepEqual(update.rows, itemRows({ ...SEEDED[100], name: 'Enveloped cup', price_cents: 500 }, version));
  });

  test('rows that are valid JSON are embedded as json, not re-encoded', async () => {
    const ws = await open();
    ws.sendJson({ action: 'subscribe', request_id: 1, body: key('101') });
    const snapshot = await ws.take(isUpdate('101'), { what: 'snapshot of items/101' });
    assert.equal(snapshot.rows.length, 4);
    for (const row of snapshot.rows) {
      assert.deepEqual(Object.keys(row).sort(), ['content_type', 'json'], JSON.stringify(row));
    }
  });

  test('skip_snapshot: subscribed, no snapshot, then the next change', async () => {
    const ws = await open();
    ws.sendJson({ action: 'subscribe', request_id: 1, body: { ...key('102'), skip_snapshot: true } });
    await ack(ws, 'subscribed', 1);
    // A sentinel subscription: its snapshot comes after any snapshot of 102 would.
    ws.sendJson({ action: 'subscribe', request_id: 2, body: key('101') });
    await ack(ws, 'subscribed', 2);
    await ws.take(isUpdate('101'), { what: 'sentinel snapshot of items/101' });
    assert.deepEqual(ws.all().filter(isUpdate('102')), [], 'no snapshot with skip_snapshot');

    const version = await stack.setItem('102', { name: 'Skipped notebook' });
    const update = await ws.take(isUpdate('102'), { what: 'the change of items/102' });
    assert.equal(update.version, version);
    assert.equal(update.rows[0].json.name, 'Skipped notebook');
  });

  test('wildcard "*": updates carry the concrete key', async () => {
    const ws = await open();
    ws.sendJson({ action: 'subscribe', request_id: 3, body: key('*') });
    assert.deepEqual(await ack(ws, 'subscribed', 3), { type: 'subscribed', request_id: 3, key: key('*') });
    // The snapshot of a wildcard is the resolver's listing of every item.
    const listing = await ws.take((m) => m?.type === 'update', { what: 'wildcard snapshot' });
    const names = listing.rows.map((r) => r.json?.name).filter(Boolean);
    assert.ok(names.includes('Desk lamp'), `listing has every item: ${JSON.stringify(listing.rows)}`);

    const version = await stack.setItem('101', { name: 'Wild lamp' });
    const update = await ws.take(isUpdate('101'), { what: 'an update keyed items/101' });
    assert.equal(update.version, version);
    assert.equal(update.rows[0].json.name, 'Wild lamp');
    const changes = ws.all().filter((m) => m?.type === 'update').slice(1);
    for (const m of changes) assert.notEqual(m.key.id, '*', `a change keyed "*": ${JSON.stringify(m)}`);
  });

  test('removed on delete', async () => {
    const created = await stack.setItem('301', { name: 'Doomed', price_cents: 5, tags: ['tmp'] });
    const ws = await open();
    ws.sendJson({ action: 'subscribe', request_id: 1, body: key('301') });
    const snapshot = await ws.take(isUpdate('301'), { what: 'snapshot of items/301' });
    assert.equal(snapshot.version, created);
    assert.equal(snapshot.removed, false);

    const deleted = await stack.deleteItem('301');
    const update = await ws.take((m) => isUpdate('301')(m) && m.version > created, { what: 'the removal of items/301' });
    assert.equal(update.removed, true);
    assert.equal(update.version, deleted);
    assert.deepEqual(update.rows ?? [], []);
  });

  test('known_version: no snapshot when it is current, one when it is older', async () => {
    const reader = await open();
    reader.sendJson({ action: 'subscribe', request_id: 1, body: key('100') });
    const current = await reader.take(isUpdate('100'), { what: 'snapshot of items/100' });

    const ws = await open();
    ws.sendJson({ action: 'subscribe', request_id: 1, body: { ...key('100'), known_version: current.version } });
    await ack(ws, 'subscribed', 1);
    ws.sendJson({ action: 'subscribe', request_id: 2, body: key('101') });
    await ws.take(isUpdate('101'), { what: 'sentinel snapshot of items/101' });
    assert.deepEqual(ws.all().filter(isUpdate('100')), [], 'no snapshot when known_version is current');

    const stale = await open();
    stale.sendJson({ action: 'subscribe', request_id: 1, body: { ...key('100'), known_version: current.version - 1 } });
    const snapshot = await stale.take(isUpdate('100'), { what: 'snapshot for an older known_version' });
    assert.equal(snapshot.version, current.version);

    const version = await stack.setItem('100', { name: 'Known cup' });
    const update = await ws.take(isUpdate('100'), { what: 'the change after subscribing with known_version' });
    assert.equal(update.version, version);
  });

  test('unsubscribe: unsubscribed ack, then no more updates of the key', async () => {
    const watcher = await open();
    watcher.sendJson({ action: 'subscribe', request_id: 1, body: key('102') });
    await watcher.take(isUpdate('102'), { what: 'watcher snapshot' });

    const ws = await open();
    ws.sendJson({ action: 'subscribe', request_id: 1, body: key('102') });
    await ws.take(isUpdate('102'), { what: 'snapshot' });
    ws.sendJson({ action: 'unsubscribe', request_id: 2, body: key('102') });
    assert.deepEqual(await ack(ws, 'unsubscribed', 2), { type: 'unsubscribed', request_id: 2, key: key('102') });

    const version = await stack.setItem('102', { name: 'After unsubscribe' });
    await watcher.take((m) => isUpdate('102')(m) && m.version === version, { what: 'the change on the watcher' });
    await delay(300);
    const after = ws.all().filter((m) => isUpdate('102')(m) && m.version === version);
    assert.deepEqual(after, [], 'no update after unsubscribed');
  });

  test('unknown entity: error with the service code (5 NOT_FOUND) and the request id', async () => {
    const ws = await open();
    ws.sendJson({ action: 'subscribe', request_id: 7, body: key('1', 'no_such_entity') });
    const err = await ws.nextJson({ what: 'the error' });
    assert.equal(err.type, 'error');
    assert.equal(err.request_id, 7);
    assert.equal(err.code, 5);
    assert.equal(err.status, 'NOT_FOUND');
    assert.deepEqual(err.key, key('1', 'no_such_entity'));
    assert.match(err.message, /no_such_entity/);
    assert.ok(ws.isOpen);
  });

  test('an invalid key gets the service code 3 and the connection stays open', async () => {
    const ws = await open();
    ws.sendJson({ action: 'subscribe', request_id: 8, body: key('1', 'bad entity!') });
    const err = await ack(ws, 'error', 8);
    assert.equal(err.code, 3);
    assert.equal(err.status, 'INVALID_ARGUMENT');
    ws.sendJson({ action: 'subscribe', request_id: 9, body: key('100') });
    await ack(ws, 'subscribed', 9);
  });

  test(`subscriptions beyond --max_subscriptions=${MAX_SUBSCRIPTIONS}: error code 8, others unaffected`, async () => {
    const ws = await open();
    const ids = ['100', '101', '102', '*'];
    ids.forEach((id, i) => ws.sendJson({ action: 'subscribe', request_id: i + 1, body: key(id) }));
    for (let i = 1; i <= ids.length; i += 1) await ack(ws, 'subscribed', i);
    ws.sendJson({ action: 'subscribe', request_id: 5, body: key('103') });
    const err = await ack(ws, 'error', 5, 'the error for the fifth subscription');
    assert.equal(err.code, 8);
    assert.equal(err.status, 'RESOURCE_EXHAUSTED');
    assert.deepEqual(err.key, key('103'));
    assert.deepEqual(ws.all().filter((m) => m?.type === 'subscribed' && m.request_id === 5), []);

    // The earlier subscriptions still work.
    const version = await stack.setItem('101', { name: 'Limited lamp' });
    await ws.take((m) => isUpdate('101')(m) && m.version === version, { what: 'update of a subscription within the limit' });

    // After an unsubscribe there is room again.
    ws.sendJson({ action: 'unsubscribe', request_id: 6, body: key('102') });
    await ack(ws, 'unsubscribed', 6);
    ws.sendJson({ action: 'subscribe', request_id: 7, body: key('103') });
    await ack(ws, 'subscribed', 7, 'subscribe after an unsubscribe made room');
  });

  test('credentials: authorization header of the upgrade, or a secret message', async () => {
    await stack.setItem('103', { name: 'Private drawer', price_cents: 1, tags: [], acl: [SECRET] });

    const anonymous = await open();
    anonymous.sendJson({ action: 'subscribe', request_id: 1, body: key('103') });
    const denied = await ack(anonymous, 'error', 1);
    assert.equal(denied.code, 7);
    assert.equal(denied.status, 'PERMISSION_DENIED');

    const withHeader = await open({ headers: { authorization: SECRET } });
    withHeader.sendJson({ action: 'subscribe', request_id: 1, body: key('103') });
    await ack(withHeader, 'subscribed', 1, 'subscribed with the authorization header');
    const snap = await withHeader.take(isUpdate('103'));
    assert.equal(snap.rows[0].json.name, 'Private drawer');

    anonymous.sendJson({ action: 'secret', body: SECRET });
    anonymous.sendJson({ action: 'subscribe', request_id: 2, body: key('103') });
    await ack(anonymous, 'subscribed', 2, 'subscribed after the secret message');
    assert.ok(!stack.gateway.output.includes(SECRET), 'the gateway logged a secret');
  });

  test('another action without a pass-through backend: error 9 with the request id', async () => {
    const ws = await open();
    ws.sendJson({ action: 'add-to-cart', request_id: 11, body: { id: '100' } });
    const err = await ack(ws, 'error', 11);
    assert.equal(err.code, 9);
    assert.equal(err.status, 'FAILED_PRECONDITION');
  });

  test('stale while the resolver is down, then a fresh update when it is back', async () => {
    const ws = await open();
    ws.sendJson({ action: 'subscribe', request_id: 1, body: key('100') });
    const before = await ws.take(isUpdate('100'), { what: 'snapshot' });

    await stack.resolver.stop('SIGKILL');
    const version = await stack.setItem('100', { name: 'Recovered cup' });
    const stale = await ws.take((m) => m?.type === 'stale', { what: 'stale while the resolver is down', timeout: 10000 });
    assert.deepEqual(stale.key, key('100'));
    assert.equal(typeof stale.reason, 'string');
    assert.ok(stale.reason.length > 0);

    await stack.startResolver(); // same address
    const fresh = await ws.take((m) => isUpdate('100')(m) && m.version === version,
      { what: 'the fresh update after recovery', timeout: 20000 });
    assert.ok(fresh.version > before.version);
    assert.equal(fresh.rows[0].json.name, 'Recovered cup');
  });

  test('per key, versions never go back on any connection of this file', () => {
    for (const ws of clients) {
      const last = new Map();
      for (const m of ws.all()) {
        if (m?.type !== 'update') continue;
        const k = `${m.key.entity}/${m.key.id}`;
        if (last.has(k)) assert.ok(m.version >= last.get(k), `${k}: version ${m.version} after ${last.get(k)}`);
        last.set(k, m.version);
      }
    }
  });
});
