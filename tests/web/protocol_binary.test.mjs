// Binary mode (subprotocol entitysync.v1.proto): one protobuf SubscribeRequest
// per binary frame in, one SubscribeResponse per binary frame out. See
// PROTOCOL.md and proto/entitysync/v1/entitysync.proto.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  SEEDED, Stack, WsClient, decodeSubscribeResponse, delay, encodeSubscribeRequest, skipWithoutGateway,
} from './harness.mjs';

const PROTOCOL = 'entitysync.v1.proto';
const SECRET = 'letmein-binary-44d0';

const key = (id, entity = 'items') => ({ entity, id });
const decode = (frame) => (frame.binary ? decodeSubscribeResponse(frame.data) : { kind: 'TEXT FRAME', text: frame.data });
const isKind = (kind, requestId) => (m) => m.kind === kind && (requestId === undefined || m[kind].request_id === requestId);
const isUpdate = (id, pred = () => true) => (m) => m.kind === 'update' && m.update.key.id === id && pred(m.update);

/** The exact rows of an item: its JSON, then one row per tag. */
function itemRows(item, version) {
  return [Stack.itemJson({ ...item, version }), ...item.tags.map((tag) => JSON.stringify({ tag }))]
    .map((data) => ({ content_type: 'application/json', data }));
}
const rowsOf = (update) => update.rows.map((r) => ({ content_type: r.content_type, data: r.data.toString('utf8') }));

describe('binary (protobuf) WebSocket protocol', { skip: skipWithoutGateway, timeout: 60000 }, () => {
  let stack;
  const clients = [];
  const open = async (opts = {}) => {
    const ws = await WsClient.open(stack.wsUrl(), { protocols: [PROTOCOL], ...opts });
    clients.push(ws);
    return ws;
  };
  const send = (ws, request) => ws.sendBinary(encodeSubscribeRequest(request));
  const take = (ws, pred, what, timeout = 5000) => ws.take(pred, { decode, what, timeout });
  const next = async (ws, what) => decode(await ws.next({ what }));

  before(async () => {
    stack = await Stack.start();
  });

  after(async () => {
    for (const ws of clients) ws.close();
    await stack?.stop();
  });

  test('the subprotocol is selected', async () => {
    const ws = await open({ protocols: [PROTOCOL, 'entitysync.v1.json'] });
    assert.equal(ws.protocol, PROTOCOL);
  });

  test('subscribe: subscribed, snapshot with the exact row bytes, then a higher version', async () => {
    const ws = await open();
    send(ws, { request_id: 1, subscribe: { key: key('100') } });
    const subscribed = await next(ws, 'subscribed');
    assert.equal(subscribed.kind, 'subscribed');
    assert.equal(subscribed.subscribed.request_id, 1);
    assert.deepEqual(subscribed.subscribed.key, key('100'));

    const snapshot = await next(ws, 'snapshot');
    assert.equal(snapshot.kind, 'update');
    assert.deepEqual(snapshot.update.key, key('100'));
    assert.equal(snapshot.update.version, 1);
    assert.equal(snapshot.update.removed, false);
    assert.deepEqual(rowsOf(snapshot.update), itemRows(SEEDED[100], 1));

    const version = await stack.setItem('100', { name: 'Binary cup' });
    const { update } = await take(ws, isUpdate('100', (u) => u.version > 1), 'the change');
    assert.equal(update.version, version);
    assert.deepEqual(rowsOf(update), itemRows({ ...SEEDED[100], name: 'Binary cup' }, version));
    assert.ok(ws.frames.every((f) => f.binary), 'every frame is binary');
  });

  test('wildcard: changes carry the concrete key', async () => {
    const ws = await open();
    send(ws, { request_id: 2, subscribe: { key: key('*') } });
    const { subscribed } = await take(ws, isKind('subscribed', 2), 'subscribed to items/*');
    assert.deepEqual(subscribed.key, key('*'));
    await take(ws, isKind('update'), 'wildcard snapshot');
    const version = await stack.setItem('102', { name: 'Binary notebook' });
    const { update } = await take(ws, isUpdate('102', (u) => u.version === version), 'update keyed items/102');
    assert.equal(JSON.parse(update.rows[0].data.toString()).name, 'Binary notebook');
  });

  test('known_version current: no snapshot', async () => {
    const reader = await open();
    send(reader, { request_id: 1, subscribe: { key: key('101') } });
    const { update: current } = await take(reader, isUpdate('101'), 'snapshot of items/101');

    const ws = await open();
    send(ws, { request_id: 1, subscribe: { key: key('101'), known_version: current.version } });
    await take(ws, isKind('subscribed', 1), 'subscribed');
    send(ws, { request_id: 2, subscribe: { key: key('100') } });
    await take(ws, isUpdate('100'), 'sentinel snapshot of items/100');
    assert.deepEqual(ws.all(decode).filter(isUpdate('101')), []);
  });

  test('unsubscribe: unsubscribed, then nothing more for the key', async () => {
    const watcher = await open();
    send(watcher, { request_id: 1, subscribe: { key: key('101') } });
    await take(watcher, isUpdate('101'), 'watcher snapshot');

    const ws = await open();
    send(ws, { request_id: 1, subscribe: { key: key('101') } });
    await take(ws, isUpdate('101'), 'snapshot');
    send(ws, { request_id: 2, unsubscribe: { key: key('101') } });
    const { unsubscribed } = await take(ws, isKind('unsubscribed', 2), 'unsubscribed');
    assert.deepEqual(unsubscribed.key, key('101'));

    const version = await stack.setItem('101', { name: 'Binary lamp' });
    await take(watcher, isUpdate('101', (u) => u.version === version), 'the change on the watcher');
    await delay(300);
    assert.deepEqual(ws.all(decode).filter(isUpdate('101', (u) => u.version === version)), []);
  });

  test('removed on delete', async () => {
    const created = await stack.setItem('302', { name: 'Binary doomed', tags: [] });
    const ws = await open();
    send(ws, { request_id: 1, subscribe: { key: key('302') } });
    await take(ws, isUpdate('302', (u) => u.version === created), 'snapshot');
    const deleted = await stack.deleteItem('302');
    const { update } = await take(ws, isUpdate('302', (u) => u.version === deleted), 'the removal');
    assert.equal(update.removed, true);
    assert.deepEqual(update.rows, []);
  });

  test('errors: unknown entity (5), denied (7) until authenticate, pass-through without backend (9)', async () => {
    await stack.setItem('104', { name: 'Binary safe', tags: [], acl: [SECRET] });
    const ws = await open();
    send(ws, { request_id: 5, subscribe: { key: key('1', 'no_such_entity') } });
    const { error: unknown } = await take(ws, isKind('error', 5), 'error for an unknown entity');
    assert.equal(unknown.code, 5);
    assert.deepEqual(unknown.key, key('1', 'no_such_entity'));

    send(ws, { request_id: 6, subscribe: { key: key('104') } });
    const { error: denied } = await take(ws, isKind('error', 6), 'error for a protected item');
    assert.equal(denied.code, 7);

    send(ws, { request_id: 7, authenticate: { secret: SECRET } });
    send(ws, { request_id: 8, subscribe: { key: key('104') } });
    await take(ws, isKind('subscribed', 8), 'subscribed after authenticate');
    const { update } = await take(ws, isUpdate('104'), 'snapshot of the protected item');
    assert.equal(JSON.parse(update.rows[0].data.toString()).name, 'Binary safe');

    send(ws, { request_id: 9, passthrough: { data: Buffer.from('{"action":"x"}') } });
    const { error: noBackend } = await take(ws, isKind('error', 9), 'error for a pass-through');
    assert.equal(noBackend.code, 9);
    assert.ok(ws.isOpen);
    assert.ok(!stack.gateway.output.includes(SECRET), 'the gateway logged a secret');
  });
});
