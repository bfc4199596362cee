// grpc-web: entitysync.v1.EntitySyncWeb/Watch through two real client
// runtimes, the official grpc-web one (text mode, application/grpc-web-text,
// over XMLHttpRequest as in a browser) and connect-web's grpc-web transport
// (binary, application/grpc-web+proto, over fetch). And CORS. See PROTOCOL.md.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createFileRegistry, fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { createClient } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import XMLHttpRequest from 'xhr2';

import {
  HOSTED, Inbox, SEEDED, Stack, decodeSubscribeResponse, descriptorSetBytes, httpRequest, protos,
  skipWithoutGateway, waitFor,
} from './harness.mjs';

const ALLOWED_ORIGIN = 'http://app.example';
const SECRET = 'letmein-grpcweb-0b7e';
const WATCH_PATH = '/entitysync.v1.EntitySyncWeb/Watch';

// xhr2 sets responseText only when the response is complete; a browser's
// XMLHttpRequest exposes it while it grows and fires readystatechange per
// chunk, which grpc-web's streaming relies on. This does the same.
class StreamingXMLHttpRequest extends XMLHttpRequest {
  _onHttpResponseData(response, data) {
    if (this._response !== response) return;
    this._responseParts.push(data);
    this._loadedBytes += data.length;
    this.responseText = Buffer.concat(this._responseParts).toString('utf8');
    this.response = this.responseText;
    this._setReadyState(XMLHttpRequest.LOADING);
    this._dispatchProgress('progress');
  }
}
globalThis.XMLHttpRequest = StreamingXMLHttpRequest;
const grpcWeb = (await import('grpc-web')).default;

const key = (id, entity = 'items') => ({ entity, id });
const isKind = (kind, requestId) => (m) => m.kind === kind && (requestId === undefined || m[kind].request_id === requestId);
const isUpdate = (id, pred = () => true) => (m) => m.kind === 'update' && m.update.key.id === id && pred(m.update);
// Row bytes arrive as Uint8Array (not Buffer) from some decoders.
const rowText = (row) => Buffer.from(row.data).toString('utf8');
const firstRow = (update) => JSON.parse(rowText(update.rows[0]));

/** Watch with the official grpc-web runtime in text mode; messages go to the returned inbox. */
function watchGrpcWebText(baseUrl, request, metadata = {}) {
  const { WatchRequest } = protos();
  const method = new grpcWeb.MethodDescriptor(
    WATCH_PATH, grpcWeb.MethodType.SERVER_STREAMING, Object, Object,
    (req) => WatchRequest.encode(WatchRequest.fromObject(req)).finish(),
    (bytes) => decodeSubscribeResponse(bytes));
  const client = new grpcWeb.GrpcWebClientBase({ format: 'text' });
  const inbox = new Inbox();
  const stream = client.serverStreaming(`${baseUrl}${WATCH_PATH}`, request, metadata, method);
  stream.on('data', (m) => inbox.push(m));
  stream.on('error', (err) => inbox.fail(err));
  stream.on('end', () => inbox.end());
  inbox.cancel = () => stream.cancel();
  return inbox;
}

let connectService;
let watchRequestSchema;
let subscribeResponseSchema;
function connectTypes() {
  if (!connectService) {
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSetBytes()));
    connectService = registry.getService('entitysync.v1.EntitySyncWeb');
    watchRequestSchema = registry.getMessage('entitysync.v1.WatchRequest');
    subscribeResponseSchema = registry.getMessage('entitysync.v1.SubscribeResponse');
  }
  return { service: connectService, WatchRequest: watchRequestSchema, SubscribeResponse: subscribeResponseSchema };
}

/**
 * Watch with connect-web's grpc-web transport (binary). Messages are
 * re-encoded and decoded like the others, so tests compare one shape.
 * `inbox.contentTypes` records the response content types.
 */
function watchConnect(baseUrl, request, headers = {}) {
  const { service, SubscribeResponse } = connectTypes();
  const inbox = new Inbox();
  inbox.contentTypes = [];
  const recordingFetch = async (input, init) => {
    const res = await fetch(input, init);
    inbox.contentTypes.push(res.headers.get('content-type'));
    return res;
  };
  const transport = createGrpcWebTransport({ baseUrl, useBinaryFormat: true, fetch: recordingFetch });
  const client = createClient(service, transport);
  const abort = new AbortController();
  inbox.cancel = () => abort.abort();
  (async () => {
    try {
      for await (const m of client.watch(request, { signal: abort.signal, headers })) {
        inbox.push(decodeSubscribeResponse(toBinary(SubscribeResponse, m)));
      }
      inbox.end();
    } catch (err) {
      if (!abort.signal.aborted) inbox.fail(err);
    }
  })();
  return inbox;
}

describe('grpc-web Watch', { skip: skipWithoutGateway, timeout: 60000 }, () => {
  let stack;
  const calls = [];

  before(async () => {
    stack = await Stack.start({ gateway: { allowed_origins: ALLOWED_ORIGIN } });
    await stack.setItem('105', { name: 'Locked box', price_cents: 9, tags: [], acl: [SECRET] });
  });

  after(async () => {
    for (const call of calls) call.cancel();
    await stack?.stop();
  });

  test('official grpc-web runtime, text mode: subscribed, snapshot, then a change', async () => {
    const call = watchGrpcWebText(stack.httpUrl, { keys: [{ key: key('100') }] });
    calls.push(call);
    const { subscribed } = await call.take(isKind('subscribed'), { what: 'subscribed' });
    assert.equal(subscribed.request_id, 1, 'request_id is the index of the key + 1');
    assert.deepEqual(subscribed.key, key('100'));
    const { update: snapshot } = await call.take(isUpdate('100'), { what: 'snapshot' });
    assert.equal(snapshot.version, 1);
    assert.deepEqual(snapshot.rows.map(rowText), [
      Stack.itemJson({ ...SEEDED[100], version: 1 }), '{"tag":"kitchen"}', '{"tag":"ceramic"}',
    ]);
    assert.deepEqual(call.all().map((m) => m.kind), ['subscribed', 'update'], 'subscribed comes before the snapshot');

    const version = await stack.setItem('100', { name: 'Text-mode cup' });
    const { update } = await call.take(isUpdate('100', (u) => u.version === version), { what: 'the change' });
    assert.equal(firstRow(update).name, 'Text-mode cup');
  });

  test('connect-web grpc-web transport, binary: subscribed, snapshot, change, and per-key errors', async () => {
    const call = watchConnect(stack.httpUrl, {
      keys: [{ key: key('101') }, { key: key('1', 'no_such_entity') }],
    });
    calls.push(call);
    const { subscribed } = await call.take(isKind('subscribed', 1), { what: 'subscribed for keys[0]' });
    assert.deepEqual(subscribed.key, key('101'));
    const { error } = await call.take(isKind('error', 2), { what: 'error for keys[1]' });
    assert.equal(error.code, 5);
    assert.deepEqual(error.key, key('1', 'no_such_entity'));
    const { update: snapshot } = await call.take(isUpdate('101'), { what: 'snapshot' });
    assert.equal(firstRow(snapshot).name, 'Desk lamp');
    assert.match(call.contentTypes[0] ?? '', /^application\/grpc-web(\+proto)?(;|$)/);

    const version = await stack.setItem('101', { name: 'Binary-mode lamp' });
    const { update } = await call.take(isUpdate('101', (u) => u.version === version), { what: 'the change' });
    assert.ok(update.version > snapshot.version);
    assert.equal(firstRow(update).name, 'Binary-mode lamp');
  });

  test('known_version current: subscribed without a snapshot', async () => {
    const probe = watchConnect(stack.httpUrl, { keys: [{ key: key('102') }] });
    calls.push(probe);
    const { update: current } = await probe.take(isUpdate('102'), { what: 'snapshot' });

    const call = watchConnect(stack.httpUrl, {
      keys: [{ key: key('102'), knownVersion: BigInt(current.version) }, { key: key('100') }],
    });
    calls.push(call);
    await call.take(isKind('subscribed', 1), { what: 'subscribed for items/102' });
    await call.take(isUpdate('100'), { what: 'snapshot of items/100 (sentinel)' });
    assert.deepEqual(call.all().filter(isUpdate('102')), [], 'no snapshot for a current known_version');
  });

  test('credentials: WatchRequest.secret or the authorization header', async () => {
    const anonymous = watchConnect(stack.httpUrl, { keys: [{ key: key('105') }] });
    calls.push(anonymous);
    const { error } = await anonymous.take(isKind('error', 1), { what: 'denied without credentials' });
    assert.equal(error.code, 7);

    const withSecret = watchGrpcWebText(stack.httpUrl, { keys: [{ key: key('105') }], secret: SECRET });
    calls.push(withSecret);
    const { update } = await withSecret.take(isUpdate('105'), { what: 'snapshot with WatchRequest.secret' });
    assert.equal(firstRow(update).name, 'Locked box');

    const withHeader = watchConnect(stack.httpUrl, { keys: [{ key: key('105') }] }, { authorization: SECRET });
    calls.push(withHeader);
    await withHeader.take(isUpdate('105'), { what: 'snapshot with the authorization header' });
    assert.ok(!stack.gateway.output.includes(SECRET), 'the gateway logged a secret');
  });

  test('CORS: preflight answers an allowed origin, not another one', async () => {
    const preflight = (origin) => httpRequest(`${stack.httpUrl}${WATCH_PATH}`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-grpc-web,x-user-agent,authorization',
      },
    });
    const ok = await preflight(ALLOWED_ORIGIN);
    assert.ok(ok.status === 200 || ok.status === 204, `preflight status ${ok.status}`);
    assert.equal(ok.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN);
    assert.match(ok.headers.get('access-control-allow-methods') ?? '', /POST|\*/i);
    const allowHeaders = (ok.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const h of ['content-type', 'x-grpc-web', 'x-user-agent', 'authorization']) {
      assert.ok(allowHeaders === '*' || allowHeaders.includes(h), `allow-headers "${allowHeaders}" lacks ${h}`);
    }

    const evil = await preflight('http://evil.example');
    const acao = evil.headers.get('access-control-allow-origin');
    assert.ok(acao !== 'http://evil.example' && acao !== '*', `a disallowed origin got allow-origin ${acao}`);
  });

  /** POSTs a Watch for items/100 from ALLOWED_ORIGIN and returns the response headers. */
  async function crossOriginCallHeaders() {
    const { WatchRequest } = protos();
    const body = Buffer.from(WatchRequest.encode(WatchRequest.fromObject({ keys: [{ key: key('100') }] })).finish());
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    const abort = new AbortController();
    try {
      const res = await fetch(`${stack.httpUrl}${WATCH_PATH}`, {
        method: 'POST',
        headers: { origin: ALLOWED_ORIGIN, 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
        body: frame,
        signal: abort.signal,
      });
      assert.equal(res.status, 200);
      return res.headers;
    } finally {
      abort.abort();
    }
  }

  test('CORS: the call itself carries allow-origin for an allowed origin', async () => {
    const headers = await crossOriginCallHeaders();
    assert.equal(headers.get('access-control-allow-origin'), ALLOWED_ORIGIN);
  });

  test('CORS: the call exposes grpc-status and grpc-message to the page', async () => {
    // A browser hides response headers from a cross-origin page unless they
    // are exposed; grpc-web reads the status of a trailers-only response
    // (an immediate error) from them.
    const headers = await crossOriginCallHeaders();
    const expose = (headers.get('access-control-expose-headers') ?? '').toLowerCase();
    assert.ok(expose === '*' || (expose.includes('grpc-status') && expose.includes('grpc-message')),
      `access-control-expose-headers is "${expose}"`);
  });
});

describe('grpc-web Watch older than the maximum connection age', { skip: skipWithoutGateway, timeout: 30000 }, () => {
  let stack;

  before(async () => {
    // Hosted: the replica's own --max_connection_age; standalone: the gateway's.
    stack = await Stack.start(HOSTED
      ? { server: ['--max_connection_age=500ms', '--max_connection_age_grace=1s'] }
      : { gateway: { max_connection_age: '500ms' } });
  });

  after(async () => {
    await stack?.stop();
  });

  test('ends with UNAVAILABLE naming the age, so the browser calls again (maybe elsewhere)', async () => {
    const call = watchConnect(stack.httpUrl, { keys: [{ key: key('100') }] });
    await call.take(isUpdate('100'), { what: 'snapshot' });
    const started = Date.now();
    await waitFor(() => call.error || call.ended, { timeout: 3000, what: 'the Watch to end' });
    assert.ok(call.error, 'the Watch ends with an error status, not OK');
    assert.equal(call.error.code, 14, `UNAVAILABLE; got ${call.error.message}`);
    assert.match(call.error.message, /maximum age/);
    assert.ok(Date.now() - started < 3000);
  });
});
