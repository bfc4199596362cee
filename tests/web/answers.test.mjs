// Requests, limits and frame timing through the gateway (issue: protocol gaps
// found by a black-box client). Every request gets exactly one answer in every
// mode, even when a later request for the same key replaces it mid-resolve;
// the credential limit holds on every gateway path with the service's own
// message; frames of one burst leave without waiting for the browser's
// delayed ACK; frames over the size limit close with 1009 and a reason.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  SEEDED, Stack, WsClient, decodeSubscribeResponse, delay, encodeSubscribeRequest, protos, skipWithoutGateway,
} from './harness.mjs';

const JSON_MODE = 'entitysync.v1.json';
const PROTO_MODE = 'entitysync.v1.proto';
// Long enough that the requests sent right after a subscribe arrive while
// its snapshot is being resolved (the service reads them in order).
const RESOLVER_DELAY_MS = 400;
const LIMIT = 4096; // the replica's default --max_credentials_bytes
const HUGE = 'a'.repeat(5000);
const HUGE_MESSAGE = `is 5000 bytes; the limit is ${LIMIT}`;

const key = (id, entity = 'items') => ({ entity, id });
const decodeBinary = (frame) => (frame.binary ? decodeSubscribeResponse(frame.data) : { kind: 'TEXT FRAME' });

/** The request id an enveloped answer is for, or undefined for updates and the like. */
const answerId = (m) => (['subscribed', 'unsubscribed', 'error', 'authenticated', 'passthrough_reply']
  .includes(m?.type) ? m.request_id : undefined);
const binaryAnswerId = (m) => m[m.kind]?.request_id;

/** Starts a grpc-web+proto Watch with raw fetch. */
function startWatch(baseUrl, request, headers = {}, signal = AbortSignal.timeout(10000)) {
  const { WatchRequest } = protos();
  const message = Buffer.from(WatchRequest.encode(WatchRequest.fromObject(request)).finish());
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return fetch(`${baseUrl}/entitysync.v1.EntitySyncWeb/Watch`, {
    method: 'POST',
    headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1', ...headers },
    body: frame,
    signal,
  });
}

/** Parses complete grpc-web frames off `body` into `out`; returns the bytes left over. */
function parseGrpcWebFrames(body, out) {
  let at = 0;
  for (; at + 5 <= body.length;) {
    const flags = body[at];
    const length = body.readUInt32BE(at + 1);
    if (at + 5 + length > body.length) break;
    const payload = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if (flags & 0x80) {
      for (const line of payload.toString('utf8').split('\r\n')) {
        const [name, ...rest] = line.split(':');
        if (name === 'grpc-status') out.status = rest.join(':').trim();
        if (name === 'grpc-message') out.message = decodeURIComponent(rest.join(':').trim());
      }
    } else {
      out.messages.push(decodeSubscribeResponse(payload));
    }
  }
  return body.subarray(at);
}

/** A grpc-web+proto Watch that ends on its own: the messages and the final status. */
async function watch(baseUrl, request, headers = {}) {
  const res = await startWatch(baseUrl, request, headers);
  const out = { messages: [], status: res.headers.get('grpc-status'), message: res.headers.get('grpc-message') };
  parseGrpcWebFrames(Buffer.from(await res.arrayBuffer()), out);
  return { httpStatus: res.status, messages: out.messages, status: Number(out.status), message: out.message ?? '' };
}

/** The messages of a grpc-web Watch until `done(messages)`, then `settleMs` more; then it is cancelled. */
async function watchUntil(baseUrl, request, done, settleMs) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 10000);
  const out = { messages: [] };
  try {
    const res = await startWatch(baseUrl, request, {}, abort.signal);
    let pending = Buffer.alloc(0);
    let doneAt;
    for await (const chunk of res.body) {
      pending = parseGrpcWebFrames(Buffer.concat([pending, chunk]), out);
      if (doneAt === undefined && done(out.messages)) {
        doneAt = Date.now();
        setTimeout(() => abort.abort(), settleMs);
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
  } finally {
    clearTimeout(timer);
  }
  return out;
}

describe('every request answered once, one credential limit, prompt frames', { skip: skipWithoutGateway, timeout: 120000 }, () => {
  let stack;
  const clients = [];
  const open = async (protocols = [JSON_MODE], opts = {}) => {
    const ws = await WsClient.open(stack.wsUrl(), { protocols, ...opts });
    clients.push(ws);
    return ws;
  };

  before(async () => {
    stack = await Stack.start({ resolver: [`--delay_ms=${RESOLVER_DELAY_MS}`] });
  });

  after(async () => {
    for (const ws of clients) ws.close();
    await stack?.stop();
  });

  test('enveloped: a subscribe replaced mid-resolve is answered "superseded"; each request once', async () => {
    const ws = await open();
    ws.sendJson({ action: 'subscribe', request_id: 45, body: key('100') });
    ws.sendJson({ action: 'unsubscribe', request_id: 46, body: key('100') });
    ws.sendJson({ action: 'subscribe', request_id: 47, body: key('100') });
    ws.sendJson({ action: 'subscribe', request_id: 48, body: key('100') });
    await ws.take((m) => m?.type === 'update' && m.key.id === '100', { what: 'the snapshot' });
    await delay(RESOLVER_DELAY_MS + 200); // late or doubled answers
    const frames = ws.all();
    const answers = new Map();
    for (const m of frames) {
      const id = answerId(m);
      if (id !== undefined) answers.set(id, [...(answers.get(id) ?? []), m]);
    }
    for (const id of [45, 46, 47, 48]) {
      assert.equal(answers.get(id)?.length, 1, `request ${id}: ${JSON.stringify(answers.get(id))}`);
    }
    for (const [id, by] of [[45, 46], [47, 48]]) {
      const err = answers.get(id)[0];
      assert.equal(err.type, 'error');
      assert.equal(err.code, 10);
      assert.equal(err.status, 'ABORTED');
      assert.equal(err.superseded, true);
      assert.deepEqual(err.key, key('100'));
      assert.match(err.message, new RegExp(`request ${by}\\b`));
    }
    assert.equal(answers.get(46)[0].type, 'unsubscribed');
    assert.equal(answers.get(48)[0].type, 'subscribed');
    assert.equal(frames.filter((m) => m?.type === 'update').length, 1, 'one snapshot');
  });

  test('binary: the same answers as protobuf, with Error.superseded', async () => {
    const ws = await open([PROTO_MODE]);
    const send = (obj) => ws.sendBinary(encodeSubscribeRequest(obj));
    send({ request_id: 1, subscribe: { key: key('101') } });
    send({ request_id: 2, subscribe: { key: key('101') } });
    await ws.take((m) => m.kind === 'update', { decode: decodeBinary, what: 'the snapshot' });
    await delay(200);
    const frames = ws.all(decodeBinary);
    const first = frames.filter((m) => binaryAnswerId(m) === 1);
    assert.equal(first.length, 1, JSON.stringify(first));
    assert.equal(first[0].kind, 'error');
    assert.equal(first[0].error.code, 10);
    assert.equal(first[0].error.superseded, true);
    assert.equal(frames.filter((m) => binaryAnswerId(m) === 2 && m.kind === 'subscribed').length, 1);
  });

  test('legacy: a replaced subscribe sends no error object, only the rows once', async () => {
    const ws = await open([]);
    ws.sendJson({ action: 'subscribe', body: key('100') });
    ws.sendJson({ action: 'unsubscribe', body: key('100') });
    ws.sendJson({ action: 'subscribe', body: key('100') });
    const row = await ws.nextJson({ timeout: 5000, what: 'the snapshot row' });
    assert.equal(row.id, '100');
    await delay(RESOLVER_DELAY_MS + 200);
    const frames = ws.all();
    assert.ok(!frames.some((m) => m?.type === 'error'), JSON.stringify(frames));
    assert.equal(frames.filter((m) => m?.id === '100').length, 1, `one snapshot: ${JSON.stringify(frames)}`);
  });

  test('grpc-web: a key listed twice is watched once, with no superseded error', async () => {
    const out = await watchUntil(stack.httpUrl, { keys: [{ key: key('102') }, { key: key('102') }] },
      (messages) => messages.some((m) => m.kind === 'update'), 300);
    const kinds = out.messages.map((m) => m.kind);
    assert.deepEqual(kinds.filter((k) => k === 'error'), [], JSON.stringify(out.messages));
    assert.equal(kinds.filter((k) => k === 'update').length, 1, JSON.stringify(kinds));
    assert.equal(kinds.filter((k) => k === 'subscribed').length, 1, JSON.stringify(kinds));
  });

  test('enveloped: a secret is answered "authenticated" with its request id', async () => {
    const ws = await open();
    ws.sendJson({ action: 'secret', request_id: 5, body: 'some-secret' });
    const m = await ws.nextJson({ what: 'the answer to the secret' });
    assert.deepEqual(m, { type: 'authenticated', request_id: 5 });
  });

  test(`credentials over ${LIMIT} bytes are refused on every gateway path with the service's message`, async () => {
    // The secret action: an error for that request, and the connection stays.
    const ws = await open();
    ws.sendJson({ action: 'secret', request_id: 9, body: HUGE });
    const err = await ws.nextJson({ what: 'the answer to a huge secret' });
    assert.equal(err.type, 'error');
    assert.equal(err.request_id, 9);
    assert.equal(err.code, 3);
    assert.equal(err.message, `secret ${HUGE_MESSAGE}`);
    ws.sendJson({ action: 'subscribe', request_id: 10, body: key('102') });
    await ws.take((m) => m?.type === 'subscribed' && m.request_id === 10, { what: 'subscribed after it' });

    // The upgrade's authorization header: the stream is refused, the close
    // says why (4000 + INVALID_ARGUMENT).
    const header = await open([JSON_MODE], { headers: { authorization: HUGE } });
    const closed = await header.waitClose();
    assert.equal(closed.code, 4003);
    assert.equal(closed.reason, `authorization ${HUGE_MESSAGE}`);

    // grpc-web: the header, and WatchRequest.secret (it used to watch on
    // without it).
    for (const [request, headers, what] of [
      [{ keys: [{ key: key('100') }] }, { authorization: HUGE }, 'authorization'],
      [{ keys: [{ key: key('100') }], secret: HUGE }, {}, 'secret'],
    ]) {
      const r = await watch(stack.httpUrl, request, headers);
      assert.equal(r.status, 3, `${what}: ${JSON.stringify(r)}`);
      assert.equal(r.message, `${what} ${HUGE_MESSAGE}`);
      assert.equal(r.messages.filter((m) => m.kind === 'update').length, 0, `${what}: no rows`);
    }
    // The long poll.
    const res = await fetch(`${stack.httpUrl}/v1/await?entity=items&id=100`, { headers: { authorization: HUGE } });
    const body = await res.json();
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(body.status, 'INVALID_ARGUMENT');
    assert.equal(body.message, `authorization ${HUGE_MESSAGE}`);
  });

  test('a snapshot follows its "subscribed" at once, and a legacy snapshot\'s rows leave together (no 40 ms delayed-ACK stalls)', async () => {
    // Without TCP_NODELAY on the accepted socket every second frame of a
    // burst waited for the browser's delayed ACK: 41-46 ms, every time.
    const gaps = [];
    for (let i = 0; i < 8; i++) {
      const ws = await open();
      ws.sendJson({ action: 'subscribe', request_id: 1, body: key('100') });
      await ws.take((m) => m?.type === 'subscribed', { what: 'subscribed' });
      const subscribedAt = performance.now();
      await ws.take((m) => m?.type === 'update', { what: 'the snapshot' });
      gaps.push(performance.now() - subscribedAt);
      ws.close();
    }
    const spreads = [];
    for (let i = 0; i < 4; i++) {
      const ws = await open([]);
      ws.sendJson({ action: 'subscribe', body: key('*') });
      await ws.next({ what: 'the first row' });
      const firstAt = performance.now();
      for (let row = 1; row < Object.keys(SEEDED).length; row++) await ws.next({ what: `row ${row}` });
      spreads.push(performance.now() - firstAt);
      ws.close();
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    assert.ok(median(gaps) < 30, `snapshot after subscribed, ms: ${gaps.map((g) => g.toFixed(1))}`);
    assert.ok(median(spreads) < 30, `legacy rows spread over, ms: ${spreads.map((g) => g.toFixed(1))}`);
  });
});
