// Unit tests of the browser client (client/web) against a fake gateway made
// with the `ws` package. Run: npm run build && node --test tests/web/client.test.mjs
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { EntitySyncClient } from '../../client/web/dist/entitysync.js';

const WAIT_MS = 2000;
const FAST = { backoffInitialMs: 10, backoffMaxMs: 40, drainReconnectMs: 20 };

// A queue whose next() waits (at most WAIT_MS) for the next pushed item.
class Queue {
  constructor(what) {
    this.what = what;
    this.items = [];
    this.waiters = [];
  }
  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  }
  next(ms = WAIT_MS) {
    if (this.items.length > 0) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(done), 1);
        reject(new Error(`timed out waiting for ${this.what}`));
      }, ms);
      const done = (item) => {
        clearTimeout(timer);
        resolve(item);
      };
      this.waiters.push(done);
    });
  }
  // Resolves true when nothing arrives within `ms`.
  async nothingFor(ms) {
    try {
      await this.next(ms);
      return false;
    } catch {
      return true;
    }
  }
}

// The fake gateway: accepts `entitysync.v1.json` and records every message.
async function startGateway(t) {
  const wss = new WebSocketServer({
    port: 0,
    handleProtocols: (protocols) => (protocols.has('entitysync.v1.json') ? 'entitysync.v1.json' : false),
  });
  await new Promise((resolve) => wss.once('listening', resolve));
  const connections = new Queue('a connection');
  wss.on('connection', (socket) => {
    const conn = {
      socket,
      messages: new Queue('a client message'),
      raw: [],
      send: (obj) => socket.send(JSON.stringify(obj)),
      next: () => conn.messages.next(),
    };
    socket.on('message', (data) => {
      conn.raw.push(data.toString());
      conn.messages.push(JSON.parse(data.toString()));
    });
    connections.push(conn);
  });
  t.after(() => {
    for (const socket of wss.clients) socket.terminate();
    return new Promise((resolve) => wss.close(resolve));
  });
  return { url: `ws://127.0.0.1:${wss.address().port}/ws/entity-sync/`, connections };
}

function newClient(t, gateway, options = {}) {
  const errors = [];
  const statuses = [];
  const client = new EntitySyncClient({
    url: gateway.url,
    WebSocket,
    ...FAST,
    onStatus: (status, detail) => statuses.push({ status, detail }),
    onError: (err) => errors.push(err),
    ...options,
  });
  t.after(() => client.close());
  return { client, errors, statuses };
}

// Subscribes and plays the server's `subscribed` answer.
async function subscribeLive(conn, client, key, updates, options = {}) {
  const unsubscribe = client.subscribe(key, (u) => updates.push(u), options);
  const msg = await conn.next();
  assert.equal(msg.action, 'subscribe');
  assert.deepEqual(msg.body.entity, key.entity);
  conn.send({ type: 'subscribed', request_id: msg.request_id, key });
  return { unsubscribe, msg };
}

const until = async (predicate, what) => {
  const deadline = Date.now() + WAIT_MS;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

const item100 = { entity: 'items', id: '100' };
const update = (key, version, json = { id: key.id }) => ({
  type: 'update', key, version, removed: false, rows: [{ content_type: 'application/json', json }],
});

test('subscribe is sent with a request_id; the update is delivered with typed rows', async (t) => {
  const gateway = await startGateway(t);
  const { client, statuses } = newClient(t, gateway);
  const updates = [];
  const subscribed = [];
  client.subscribe(item100, (u) => updates.push(u), { onSubscribed: (k) => subscribed.push(k) });
  const conn = await gateway.connections.next();
  const msg = await conn.next();
  assert.equal(msg.action, 'subscribe');
  assert.equal(Number.isInteger(msg.request_id), true);
  assert.ok(msg.request_id >= 0);
  assert.deepEqual(msg.body, { entity: 'items', id: '100' });
  assert.deepEqual(statuses.map((s) => s.status), ['connecting', 'open']);

  conn.send({ type: 'subscribed', request_id: msg.request_id, key: item100 });
  conn.send({
    type: 'update', key: item100, version: 12, removed: false,
    rows: [
      { content_type: 'application/json', json: { id: '100', name: 'pen' } },
      { content_type: 'text/plain', text: 'hello' },
      { content_type: 'application/octet-stream', base64: 'AAE=' },
    ],
  });
  await until(() => updates.length === 1, 'the update');
  assert.deepEqual(subscribed, [item100]);
  assert.deepEqual(updates[0], {
    key: item100, version: 12, removed: false,
    rows: [
      { contentType: 'application/json', json: { id: '100', name: 'pen' } },
      { contentType: 'text/plain', text: 'hello' },
      { contentType: 'application/octet-stream', base64: 'AAE=' },
    ],
  });
});

test('a wildcard subscription receives updates with the concrete key, and stale', async (t) => {
  const gateway = await startGateway(t);
  const { client } = newClient(t, gateway);
  const conn = await gateway.connections.next();
  const updates = [];
  const stale = [];
  await subscribeLive(conn, client, { entity: 'items', id: '*' }, updates, {
    onStale: (key, reason) => stale.push({ key, reason }),
  });
  conn.send(update({ entity: 'items', id: '7' }, 3));
  conn.send({ type: 'update', key: { entity: 'items', id: '8' }, version: 4, removed: true, rows: [] });
  conn.send(update({ entity: 'other', id: '7' }, 5)); // another entity: not ours
  conn.send({ type: 'stale', key: { entity: 'items', id: '7' }, reason: 'resolver unavailable' });
  await until(() => stale.length === 1, 'stale');
  assert.deepEqual(updates.map((u) => [u.key.id, u.version, u.removed]), [['7', 3, false], ['8', 4, true]]);
  assert.deepEqual(stale, [{ key: { entity: 'items', id: '7' }, reason: 'resolver unavailable' }]);
});

test('versions not greater than the last delivered are dropped, numbers and strings', async (t) => {
  const gateway = await startGateway(t);
  const { client } = newClient(t, gateway);
  const conn = await gateway.connections.next();
  const updates = [];
  await subscribeLive(conn, client, { entity: 'items', id: '*' }, updates);
  const a = { entity: 'items', id: 'a' };
  const b = { entity: 'items', id: 'b' };
  for (const v of [5, 3, 5, 6]) conn.send(update(a, v));
  conn.send(update(b, 1)); // per key: b's versions are its own
  // 2^53 + 1 and 2^53 are equal as numbers: only BigInt tells them apart.
  for (const v of ['9007199254740992', '9007199254740993', '9007199254740992', 9007199254740991, '9007199254740994']) {
    conn.send(update(b, v));
  }
  conn.send({ type: 'stale', key: b, reason: 'end' });
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(
    updates.map((u) => `${u.key.id}@${u.version}`),
    ['a@5', 'a@6', 'b@1', 'b@9007199254740992', 'b@9007199254740993', 'b@9007199254740994'],
  );
});

test('after stale, a refresh at the same version is delivered once (current again)', async (t) => {
  const gateway = await startGateway(t);
  const { client } = newClient(t, gateway);
  const conn = await gateway.connections.next();
  const updates = [];
  await subscribeLive(conn, client, { entity: 'items', id: '*' }, updates);
  const a = { entity: 'items', id: 'a' };
  conn.send(update(a, 5));
  conn.send(update(a, 5)); // a duplicate: dropped
  conn.send({ type: 'stale', key: a, reason: 'resolver unavailable' });
  conn.send(update(a, 5)); // the refresh after recovery: delivered
  conn.send(update(a, 5)); // and a duplicate of it: dropped again
  conn.send(update(a, 6));
  await until(() => updates.some((u) => u.version === 6), 'version 6');
  assert.deepEqual(updates.map((u) => `${u.key.id}@${u.version}`), ['a@5', 'a@5', 'a@6']);
});

test('after a 1012 close it reconnects soon and resubscribes with known_version', async (t) => {
  const gateway = await startGateway(t);
  // A drain delay far below the backoff ceiling: 1012 must use it.
  const { client, statuses } = newClient(t, gateway, { backoffInitialMs: 5000, backoffMaxMs: 5000, drainReconnectMs: 20 });
  let conn = await gateway.connections.next();
  const updates = [];
  const wildcardUpdates = [];
  await subscribeLive(conn, client, item100, updates);
  await subscribeLive(conn, client, { entity: 'items', id: '*' }, wildcardUpdates);
  const big = { entity: 'items', id: 'big' };
  await subscribeLive(conn, client, big, updates);
  conn.send(update(item100, 7));
  conn.send(update({ entity: 'items', id: '200' }, 3));
  conn.send(update(big, '9007199254740993'));
  // The wildcard gets every key of its entity, also those subscribed on their own.
  await until(() => updates.length === 2 && wildcardUpdates.length === 3, 'the updates');
  assert.deepEqual(wildcardUpdates.map((u) => u.key.id), ['100', '200', 'big']);

  const started = Date.now();
  conn.socket.close(1012, 'draining');
  conn = await gateway.connections.next();
  assert.ok(Date.now() - started < 1000, 'reconnected within the drain delay');
  const reconnecting = statuses.find((s) => s.status === 'reconnecting');
  assert.equal(reconnecting.detail.code, 1012);
  await until(() => statuses.at(-1).status === 'open', 'open again');

  const resubscribes = [await conn.next(), await conn.next(), await conn.next()];
  const bodies = Object.fromEntries(resubscribes.map((m) => [m.body.id, m.body]));
  assert.deepEqual(resubscribes.map((m) => m.action), ['subscribe', 'subscribe', 'subscribe']);
  assert.deepEqual(bodies['100'], { entity: 'items', id: '100', known_version: 7 });
  assert.deepEqual(bodies['*'], { entity: 'items', id: '*' }); // no known_version for a wildcard
  // Beyond 2^53 the known_version is still an exact JSON integer.
  assert.match(conn.raw.find((r) => r.includes('"big"')), /"known_version":9007199254740993[,}]/);

  // Live again: newer versions pass, the old one is still dropped.
  for (const m of resubscribes) conn.send({ type: 'subscribed', request_id: m.request_id, key: { entity: m.body.entity, id: m.body.id } });
  conn.send(update(item100, 7));
  conn.send(update(item100, 8));
  await until(() => updates.length === 3, 'the update after reconnecting');
  assert.deepEqual(updates.map((u) => u.version), [7, '9007199254740993', 8]);
});

test('the secret is sent first, after every reconnect (4xxx and 1013 closes too)', async (t) => {
  const gateway = await startGateway(t);
  const { client } = newClient(t, gateway, { secret: 'my-super-secret-secret-123' });
  client.subscribe(item100, () => {});
  for (const code of [4008, 1013, null]) {
    const conn = await gateway.connections.next();
    const first = await conn.next();
    assert.equal(first.action, 'secret');
    assert.equal(first.body, 'my-super-secret-secret-123');
    const second = await conn.next();
    assert.equal(second.action, 'subscribe');
    assert.deepEqual(second.body, item100);
    if (code !== null) conn.socket.close(code, 'bye');
  }
});

test('unsubscribe sends unsubscribe, stops callbacks and is not resubscribed', async (t) => {
  const gateway = await startGateway(t);
  const { client } = newClient(t, gateway);
  let conn = await gateway.connections.next();
  const updates = [];
  const other = [];
  const { unsubscribe } = await subscribeLive(conn, client, item100, updates);
  await subscribeLive(conn, client, { entity: 'items', id: '101' }, other);
  conn.send(update(item100, 1));
  await until(() => updates.length === 1, 'the first update');
  unsubscribe();
  unsubscribe(); // idempotent
  const msg = await conn.next();
  assert.equal(msg.action, 'unsubscribe');
  assert.deepEqual(msg.body, item100);
  assert.ok(Number.isInteger(msg.request_id));
  assert.ok(await conn.messages.nothingFor(50), 'only one unsubscribe');
  conn.send({ type: 'unsubscribed', request_id: msg.request_id, key: item100 });
  conn.send(update(item100, 2));
  conn.send(update({ entity: 'items', id: '101' }, 1));
  await until(() => other.length === 1, 'the other key');
  assert.equal(updates.length, 1);

  conn.socket.close(1012);
  conn = await gateway.connections.next();
  const resubscribe = await conn.next();
  assert.deepEqual(resubscribe.body, { entity: 'items', id: '101', known_version: 1 });
  assert.ok(await conn.messages.nothingFor(50), 'items/100 is not resubscribed');
});

test('a final error drops the subscription; UNAVAILABLE is retried', async (t) => {
  const gateway = await startGateway(t);
  const { client, errors } = newClient(t, gateway);
  let conn = await gateway.connections.next();
  const denied = [];
  const deniedErrors = [];
  client.subscribe(item100, (u) => denied.push(u), { onError: (err, final) => deniedErrors.push({ err, final }) });
  const msg = await conn.next();
  conn.send({ type: 'error', request_id: msg.request_id, code: 7, status: 'PERMISSION_DENIED', message: 'no', key: item100 });
  await until(() => deniedErrors.length === 1, 'the error');
  assert.deepEqual(deniedErrors[0], {
    err: { code: 7, status: 'PERMISSION_DENIED', message: 'no', key: item100, requestId: msg.request_id },
    final: true,
  });
  conn.send({ type: 'subscribed', request_id: msg.request_id, key: item100 }); // ignored: dropped
  conn.send(update(item100, 1));

  const retried = [];
  const key101 = { entity: 'items', id: '101' };
  const retryErrors = [];
  client.subscribe(key101, (u) => retried.push(u), { onError: (err, final) => retryErrors.push(final) });
  const first = await conn.next();
  conn.send({ type: 'error', request_id: first.request_id, code: 14, status: 'UNAVAILABLE', message: 'later', key: key101 });
  const again = await conn.next();
  assert.equal(again.action, 'subscribe');
  assert.deepEqual(again.body, key101);
  assert.notEqual(again.request_id, first.request_id);
  assert.deepEqual(retryErrors, [false]);
  conn.send({ type: 'subscribed', request_id: again.request_id, key: key101 });
  conn.send(update(key101, 1));
  await until(() => retried.length === 1, 'the retried subscription');
  assert.equal(denied.length, 0);
  assert.deepEqual(errors, []);

  // Not resubscribed after a reconnect, and subscribing it again works.
  conn.socket.close(1012);
  conn = await gateway.connections.next();
  assert.deepEqual((await conn.next()).body, { entity: 'items', id: '101', known_version: 1 });
  assert.ok(await conn.messages.nothingFor(50), 'items/100 is not resubscribed');
  client.subscribe(item100, () => {});
  assert.deepEqual((await conn.next()).body, item100);
});

test('close() stops for good: no reconnect, status closed', async (t) => {
  const gateway = await startGateway(t);
  const { client, statuses } = newClient(t, gateway, { backoffInitialMs: 1, backoffMaxMs: 1, drainReconnectMs: 1 });
  client.subscribe(item100, () => {});
  let conn = await gateway.connections.next();
  await conn.next();
  // A server close first: the client reconnects.
  conn.socket.close(1013);
  conn = await gateway.connections.next();
  await conn.next();
  const closed = new Promise((resolve) => conn.socket.once('close', (code) => resolve(code)));
  client.close();
  assert.equal(await closed, 1000);
  assert.equal(statuses.at(-1).status, 'closed');
  assert.ok(await gateway.connections.nothingFor(200), 'no reconnect after close()');
  assert.throws(() => client.subscribe(item100, () => {}));
  assert.equal(statuses.at(-1).status, 'closed');
});

test('close() while waiting to reconnect cancels the reconnect', async (t) => {
  const gateway = await startGateway(t);
  const { client } = newClient(t, gateway, { backoffInitialMs: 100, backoffMaxMs: 100, drainReconnectMs: 100 });
  const conn = await gateway.connections.next();
  conn.socket.close(1012);
  await new Promise((resolve) => conn.socket.once('close', resolve));
  client.close();
  assert.ok(await gateway.connections.nothingFor(300), 'no reconnect after close()');
});

test('failed attempts back off within a doubling ceiling until the gateway is up', async (t) => {
  // A free port with nothing listening yet.
  const probe = new WebSocketServer({ port: 0 });
  await new Promise((resolve) => probe.once('listening', resolve));
  const port = probe.address().port;
  await new Promise((resolve) => probe.close(resolve));

  const { client, statuses } = newClient(t, { url: `ws://127.0.0.1:${port}/ws/entity-sync/` },
    { backoffInitialMs: 10, backoffMaxMs: 40 });
  const received = [];
  client.subscribe(item100, () => {});
  await until(() => statuses.filter((s) => s.status === 'reconnecting').length >= 5, 'failed attempts');
  const delays = statuses.filter((s) => s.status === 'reconnecting').map((s) => s.detail.delayMs);
  delays.slice(0, 5).forEach((d, i) => assert.ok(d <= Math.min(10 * 2 ** i, 40), `delay ${i} = ${d}`));

  const wss = new WebSocketServer({ port, handleProtocols: () => 'entitysync.v1.json' });
  t.after(() => {
    for (const socket of wss.clients) socket.terminate();
    return new Promise((resolve) => wss.close(resolve));
  });
  wss.on('connection', (socket) => socket.on('message', (data) => received.push(JSON.parse(data.toString()))));
  await until(() => received.length === 1, 'the subscribe once the gateway is up');
  assert.deepEqual(received[0].body, item100);
  assert.equal(statuses[0].status, 'connecting');
  assert.equal(statuses.at(-1).status, 'open');
});

test('subscribing a key twice throws; a bad key throws', async (t) => {
  const gateway = await startGateway(t);
  const { client } = newClient(t, gateway);
  const unsubscribe = client.subscribe(item100, () => {});
  assert.throws(() => client.subscribe(item100, () => {}), /already subscribed/);
  assert.throws(() => client.subscribe({ entity: 'items', id: '' }, () => {}));
  unsubscribe();
  client.subscribe(item100, () => {});
});
