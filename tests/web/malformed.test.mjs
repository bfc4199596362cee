// Bad input and abusive clients: each gets a precise error or close code
// (PROTOCOL.md, "Errors and closing"), and none of it disturbs the other
// connections or the gateway process.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  Stack, WsClient, decodeSubscribeResponse, encodeSubscribeRequest, httpRequest, skipWithoutGateway, waitFor,
} from './harness.mjs';

const JSON_MODE = 'entitysync.v1.json';
const PROTO_MODE = 'entitysync.v1.proto';
const MAX_MESSAGE_BYTES = 4096;
const IDLE_TIMEOUT_MS = 2000;

const key = (id, entity = 'items') => ({ entity, id });
const decodeBinary = (frame) => (frame.binary ? decodeSubscribeResponse(frame.data) : { kind: 'TEXT FRAME', text: frame.data });

describe('malformed input and misbehaving clients', { skip: skipWithoutGateway, timeout: 90000 }, () => {
  let stack;
  let healthy; // opened first, must keep working through everything below
  const clients = [];
  const open = async (protocols = [JSON_MODE], opts = {}) => {
    const ws = await WsClient.open(stack.wsUrl(), { protocols, ...opts });
    clients.push(ws);
    return ws;
  };

  /** Sends `raw` in enveloped mode and expects error code 3; the connection must stay usable. */
  async function expectInvalid(raw, { requestId = 0, protocols = [JSON_MODE] } = {}) {
    const ws = await open(protocols);
    ws.sendText(raw);
    const err = await ws.nextJson({ what: `the error for ${raw}` });
    assert.equal(err.type, 'error', `answer to ${raw}: ${JSON.stringify(err)}`);
    assert.equal(err.code, 3, `answer to ${raw}: ${JSON.stringify(err)}`);
    assert.equal(err.status, 'INVALID_ARGUMENT');
    assert.equal(err.request_id, requestId, `request_id of the answer to ${raw}`);
    assert.equal(typeof err.message, 'string');
    // Still open and working.
    if (protocols.length === 0) {
      ws.sendJson({ action: 'subscribe', body: key('101') });
      const row = await ws.nextJson({ what: 'a row after the error (legacy)' });
      assert.equal(row.id, '101');
    } else {
      ws.sendJson({ action: 'subscribe', request_id: 99, body: key('101') });
      await ws.take((m) => m?.type === 'subscribed' && m.request_id === 99, { what: 'subscribed after the error' });
    }
    ws.close();
  }

  before(async () => {
    stack = await Stack.start({
      gateway: { max_message_bytes: MAX_MESSAGE_BYTES, idle_timeout: `${IDLE_TIMEOUT_MS / 1000}s` },
    });
    healthy = await open();
    healthy.sendJson({ action: 'subscribe', request_id: 1, body: key('100') });
    await healthy.take((m) => m?.type === 'update' && m.key.id === '100', { what: 'snapshot on the healthy connection' });
  });

  after(async () => {
    for (const ws of clients) ws.close();
    await stack?.stop();
  });

  test('text that is not JSON: error 3, connection stays open', async () => {
    await expectInvalid('this is not json');
    await expectInvalid('{"action":"subscribe",');
  });

  test('legacy mode: text that is not JSON gets the error object too', async () => {
    await expectInvalid('not json either', { protocols: [] });
  });

  test('JSON that is not an object: error 3', async () => {
    await expectInvalid('[{"action":"subscribe","body":{"entity":"items","id":"100"}}]');
    await expectInvalid('"subscribe"');
    await expectInvalid('42');
    await expectInvalid('null');
  });

  test('missing body: error 3 with the request id', async () => {
    await expectInvalid('{"action":"subscribe","request_id":4}', { requestId: 4 });
    await expectInvalid('{"action":"unsubscribe","request_id":5}', { requestId: 5 });
  });

  test('body or fields of the wrong type: error 3', async () => {
    await expectInvalid('{"action":"subscribe","request_id":6,"body":"items/100"}', { requestId: 6 });
    await expectInvalid('{"action":"subscribe","request_id":7,"body":["items","100"]}', { requestId: 7 });
    await expectInvalid('{"action":"subscribe","request_id":8,"body":{"entity":"items","id":100}}', { requestId: 8 });
    await expectInvalid('{"action":"subscribe","request_id":9,"body":{"entity":"items","id":"100","known_version":"new"}}',
      { requestId: 9 });
    await expectInvalid('{"action":"secret","request_id":10,"body":{"secret":"x"}}', { requestId: 10 });
    await expectInvalid('{"action":"subscribe","request_id":"eleven","body":{"entity":"items","id":"100"}}');
    await expectInvalid('{"action":"subscribe","request_id":-1,"body":{"entity":"items","id":"100"}}');
  });

  test('a binary frame in a JSON mode closes with 1003', async () => {
    for (const protocols of [[JSON_MODE], []]) {
      const ws = await open(protocols);
      ws.sendBinary(Buffer.from('{"action":"subscribe","body":{"entity":"items","id":"100"}}'));
      const { code } = await ws.waitClose();
      assert.equal(code, 1003, `mode ${protocols[0] ?? 'legacy'}`);
    }
  });

  test('a text frame in binary mode closes with 1003', async () => {
    const ws = await open([PROTO_MODE]);
    ws.sendText('{"action":"subscribe","body":{"entity":"items","id":"100"}}');
    const { code } = await ws.waitClose();
    assert.equal(code, 1003);
  });

  test('garbage binary in binary mode: error 3, connection stays open', async () => {
    const ws = await open([PROTO_MODE]);
    ws.sendBinary(Buffer.from('ffffffffffffffffffffff', 'hex')); // a varint that never ends
    const answer = decodeBinary(await ws.next({ what: 'the answer to garbage' }));
    assert.equal(answer.kind, 'error', JSON.stringify(answer));
    assert.equal(answer.error.code, 3);
    ws.sendBinary(encodeSubscribeRequest({ request_id: 2, subscribe: { key: key('100') } }));
    const ok = await ws.take((m) => m.kind === 'subscribed', { decode: decodeBinary, what: 'subscribed after garbage' });
    assert.equal(ok.subscribed.request_id, 2);
    assert.ok(ws.isOpen);
  });

  test(`a message over --max_message_bytes=${MAX_MESSAGE_BYTES} closes with 1009`, async () => {
    const big = JSON.stringify({ action: 'subscribe', request_id: 1, body: { entity: 'items', id: 'x'.repeat(MAX_MESSAGE_BYTES + 100) } });
    // The close frame comes with a reason naming the limit, also for frames
    // far over it (1 MiB: those used to end in 1006, no close frame) and for
    // a message whose fragments add up to more than the limit.
    const tooBig = { code: 1009, reason: `message over ${MAX_MESSAGE_BYTES} bytes, the limit (--max_message_bytes)` };
    const json = await open();
    json.sendText(big);
    assert.deepEqual(await json.waitClose(), tooBig);

    const binary = await open([PROTO_MODE]);
    binary.sendBinary(encodeSubscribeRequest({ request_id: 1, subscribe: { key: key('y'.repeat(MAX_MESSAGE_BYTES + 100)) } }));
    assert.deepEqual(await binary.waitClose(), tooBig);

    const hugeText = await open();
    hugeText.sendText(JSON.stringify({ action: 'subscribe', request_id: 1, body: { entity: 'items', id: 'x'.repeat(1 << 20) } }));
    assert.deepEqual(await hugeText.waitClose(), tooBig);
    const hugeBinary = await open([PROTO_MODE]);
    hugeBinary.sendBinary(Buffer.alloc(1 << 20));
    assert.deepEqual(await hugeBinary.waitClose(), tooBig);

    const fragmented = await open();
    const piece = 'x'.repeat(MAX_MESSAGE_BYTES / 2);
    for (let i = 0; i < 3; i++) fragmented.ws.send(piece, { fin: false });
    fragmented.ws.send(piece, { fin: true });
    assert.deepEqual(await fragmented.waitClose(), tooBig);

    // Just under the limit is fine: the service answers (its own limit on
    // id bytes, 1024, gives INVALID_ARGUMENT, and the connection stays).
    const under = await open();
    under.sendText(JSON.stringify({ action: 'subscribe', request_id: 3, body: { entity: 'items', id: 'z'.repeat(MAX_MESSAGE_BYTES - 200) } }));
    const err = await under.take((m) => m?.request_id === 3, { what: 'the answer to a large but allowed message' });
    assert.equal(err.type, 'error');
    assert.equal(err.code, 3);
    assert.ok(under.isOpen);
  });

  test('a disallowed Origin is refused with 403; the own origin and no Origin are allowed', async () => {
    await assert.rejects(open([JSON_MODE], { origin: 'http://evil.example' }), (err) => {
      assert.equal(err.status, 403);
      return true;
    });
    const own = await open([JSON_MODE], { origin: stack.origin });
    assert.ok(own.isOpen);
    const none = await open([JSON_MODE]);
    assert.ok(none.isOpen);
  });

  test('--max_connections reached: the upgrade is refused with 503', async () => {
    const { proc, port } = await stack.startGateway({ max_connections: 2 }, { port: null, name: 'gateway-limited' });
    try {
      const url = `ws://127.0.0.1:${port}/ws/entity-sync/`;
      const a = await WsClient.open(url, { protocols: [JSON_MODE] });
      const b = await WsClient.open(url, { protocols: [JSON_MODE] });
      clients.push(a, b);
      await assert.rejects(WsClient.open(url, { protocols: [JSON_MODE] }), (err) => {
        assert.equal(err.status, 503);
        return true;
      });
      a.close();
      // A slot frees up once a connection has gone.
      const c = await waitFor(() => WsClient.open(url, { protocols: [JSON_MODE] }), { timeout: 5000, what: 'a free slot' });
      clients.push(c);
      c.sendJson({ action: 'subscribe', request_id: 1, body: key('100') });
      await c.take((m) => m?.type === 'subscribed', { what: 'subscribed on the limited gateway' });
    } finally {
      await proc.stop();
    }
  });

  test(`a client that stops answering pings is dropped (1006, no close frame) after --idle_timeout`, async () => {
    const started = Date.now();
    const silent = await open([JSON_MODE], { autoPong: false });
    const pingsBefore = healthy.pings;
    const { code } = await silent.waitClose({ timeout: IDLE_TIMEOUT_MS * 4 + 2000 });
    const elapsed = Date.now() - started;
    assert.equal(code, 1006, 'PROTOCOL.md: the TCP connection is dropped without a close frame');
    assert.ok(elapsed >= IDLE_TIMEOUT_MS * 0.9, `closed after ${elapsed} ms, before the idle timeout`);
    assert.ok(silent.pings > 0, 'the gateway pinged the silent client');
    assert.ok(healthy.pings > pingsBefore, 'the gateway pings the healthy client too');
    assert.ok(healthy.isOpen, 'a client that answers pings is not idle');
  });

  test('after all that, the first connection still receives updates and the gateway is alive', async () => {
    assert.ok(healthy.isOpen, `healthy connection closed: ${JSON.stringify(healthy.closeInfo)}`);
    const version = await stack.setItem('100', { name: 'Still here' });
    const update = await healthy.take((m) => m?.type === 'update' && m.version === version,
      { what: 'the change on the healthy connection' });
    assert.equal(update.rows[0].json.name, 'Still here');
    assert.ok(stack.gateway.alive, `gateway exited: ${JSON.stringify(stack.gateway.exit)}`);
    assert.equal((await httpRequest(`${stack.httpUrl}/healthz`)).status, 200);
  });

  test('SIGTERM: connections are closed with 1001 and the gateway exits', async () => {
    const exit = stack.gateway.stop('SIGTERM', { timeout: 10000 });
    const { code } = await healthy.waitClose({ timeout: 10000 });
    assert.equal(code, 1001);
    const status = await exit;
    assert.ok(!status.timedOut, 'the gateway did not exit within 10 s of SIGTERM');
    assert.equal(status.code, 0, `exit ${JSON.stringify(status)}`);
  });
});

describe('upstream going away or unreachable', { skip: skipWithoutGateway, timeout: 60000 }, () => {
  let stack;
  const clients = [];

  before(async () => {
    stack = await Stack.start({ server: ['--shutdown_grace=5s', '--goaway_reconnect_within=500ms'] });
  });

  after(async () => {
    for (const ws of clients) ws.close();
    await stack?.stop();
  });

  test('the service draining (SIGTERM, goaway) closes browser connections with 1012', async () => {
    const ws = await WsClient.open(stack.wsUrl(), { protocols: [JSON_MODE] });
    clients.push(ws);
    ws.sendJson({ action: 'subscribe', request_id: 1, body: key('100') });
    await ws.take((m) => m?.type === 'update', { what: 'snapshot' });
    const legacy = await WsClient.open(stack.wsUrl());
    clients.push(legacy);
    legacy.sendJson({ action: 'subscribe', body: key('100') });
    await legacy.take((m) => m?.id === '100', { what: 'legacy snapshot' });

    const exit = stack.server.stop('SIGTERM', { timeout: 10000 });
    assert.equal((await ws.waitClose({ timeout: 5000 })).code, 1012);
    assert.equal((await legacy.waitClose({ timeout: 5000 })).code, 1012);
    await exit;
    assert.ok(stack.gateway.alive, 'the gateway outlives its upstream');
  });

  test('with the service unreachable, a connection is closed with 1013 and the gateway stays up', async () => {
    // The server of this file is gone (previous test), or stopped here.
    await stack.server.stop('SIGKILL');
    const ws = await WsClient.open(stack.wsUrl(), { protocols: [JSON_MODE] }).catch((err) => err);
    if (ws instanceof Error) {
      assert.fail(`the upgrade was refused (${ws.status ?? ws.message}); PROTOCOL.md says close with 1013`);
    }
    clients.push(ws);
    ws.sendJson({ action: 'subscribe', request_id: 1, body: key('100') });
    assert.equal((await ws.waitClose({ timeout: 15000 })).code, 1013);
    assert.ok(stack.gateway.alive);
    assert.equal((await httpRequest(`${stack.httpUrl}/healthz`)).status, 200, 'healthz while the upstream is down');
  });
});
