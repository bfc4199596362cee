// The long poll over plain HTTP: GET /v1/await on the gateway, which calls
// the service's EntitySync.Await. See PROTOCOL.md, "Long poll".

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { SEEDED, Stack, delay, skipWithoutGateway, waitFor } from './harness.mjs';

const ALLOWED_ORIGIN = 'https://app.example';
const SECRET = 'await-secret-5d1e';

function itemRows(item, version) {
  return [
    { content_type: 'application/json', json: { id: item.id, name: item.name, price_cents: item.price_cents, version } },
    ...item.tags.map((tag) => ({ content_type: 'application/json', json: { tag } })),
  ];
}

describe('long poll GET /v1/await', { skip: skipWithoutGateway, timeout: 90000 }, () => {
  let stack;
  const url = (query) => `${stack.httpUrl}/v1/await?${query}`;
  const get = async (query, { headers = {}, timeout = 20000, signal } = {}) => {
    const res = await fetch(url(query), { headers, signal: signal ?? AbortSignal.timeout(timeout) });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, text, json };
  };

  before(async () => {
    stack = await Stack.start({
      server: ['--max_awaits=2', '--await_max_timeout=20s'],
      gateway: { allowed_origins: ALLOWED_ORIGIN },
    });
  });

  after(async () => {
    await stack?.stop();
  });

  test('without after_version: 200 with the current state as an enveloped update', async () => {
    const r = await get('entity=items&id=100');
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type'), /application\/json/);
    assert.equal(r.headers.get('entitysync-version'), '1');
    assert.deepEqual(r.json, {
      type: 'update', key: { entity: 'items', id: '100' }, version: 1, removed: false,
      rows: itemRows(SEEDED[100], 1),
    });
  });

  test('with after_version: waits for a change and answers with it', async () => {
    const pending = get('entity=items&id=101&after_version=2&timeout_ms=15000');
    let settled = false;
    pending.then(() => { settled = true; }, () => { settled = true; });
    // Nothing newer than version 2 yet: the call must still be waiting.
    await delay(300);
    assert.equal(settled, false, 'answered before anything changed');
    const version = await stack.setItem('101', { name: 'Desk lamp XL', price_cents: 3999, tags: [] });
    const r = await pending;
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.type, 'update');
    assert.equal(r.json.version, version);
    assert.equal(r.headers.get('entitysync-version'), String(version));
    assert.deepEqual(r.json.rows, [{
      content_type: 'application/json',
      json: { id: '101', name: 'Desk lamp XL', price_cents: 3999, version },
    }]);
  });

  test('a version newer than after_version answers at once', async () => {
    const r = await get('entity=items&id=102&after_version=0');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.type, 'update');
    assert.equal(r.json.version, 3);
  });

  test('timeout: 200 with type "timeout" and the current version', async () => {
    const r = await get('entity=items&id=100&after_version=1&timeout_ms=200');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { type: 'timeout', key: { entity: 'items', id: '100' }, version: 1 });
    assert.equal(r.headers.get('entitysync-version'), '1');
  });

  test('bad parameters: 400 with an error object', async () => {
    for (const query of [
      'entity=items',                                 // no id
      'id=100',                                       // no entity
      'entity=items&id=100&after_version=abc',
      'entity=items&id=100&after_version=-1',
      'entity=items&id=100&timeout_ms=99999999999',
      'entity=items&id=%zz',
      'entity=items&id=%FF',                          // not UTF-8
      'entity=items&id=*',                            // no wildcards
      'entity=it%20ems&id=100',                       // the service's key check
    ]) {
      const r = await get(query);
      assert.equal(r.status, 400, `${query}: ${r.text}`);
      assert.equal(r.json?.type, 'error', query);
      assert.equal(r.json.code, 3, query);
      assert.equal(r.json.status, 'INVALID_ARGUMENT', query);
    }
  });

  test('unknown entity 404, denied 403, then allowed with the authorization header', async () => {
    const unknown = await get('entity=users&id=1');
    assert.equal(unknown.status, 404, unknown.text);
    assert.equal(unknown.json.code, 5);

    await stack.setItem('vault', { name: 'Vault', price_cents: 1, tags: [], acl: [SECRET] });
    const denied = await get('entity=items&id=vault');
    assert.equal(denied.status, 403, denied.text);
    assert.equal(denied.json.code, 7);
    assert.doesNotMatch(denied.text, /Vault/);

    const allowed = await get('entity=items&id=vault', { headers: { authorization: SECRET } });
    assert.equal(allowed.status, 200, allowed.text);
    assert.equal(allowed.json.rows[0].json.name, 'Vault');
  });

  test('other methods get 405', async () => {
    const res = await fetch(url('entity=items&id=100'), { method: 'POST', body: '', signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET');
  });

  test('CORS: allowed origins get the headers, others 403', async () => {
    const ok = await get('entity=items&id=100', { headers: { origin: ALLOWED_ORIGIN } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN);
    assert.match(ok.headers.get('access-control-expose-headers') ?? '', /entitysync-version/i);
    const refused = await get('entity=items&id=100', { headers: { origin: 'https://evil.example' } });
    assert.equal(refused.status, 403);
  });

  test('a client that goes away frees its place; past --max_awaits: 429', async () => {
    // --max_awaits=2 on the server. Two waiting calls fill it.
    const controllers = [new AbortController(), new AbortController()];
    const settled = [false, false];
    const waiting = controllers.map((c, i) =>
      get('entity=items&id=100&after_version=1&timeout_ms=15000', { signal: c.signal })
        .catch((e) => e)
        .finally(() => { settled[i] = true; }));
    // Both must hold their place before any probe competes for one (a probe
    // that got there first would turn a waiting call away with 429).
    await delay(500);
    assert.deepEqual(settled, [false, false], 'both calls are waiting');
    await waitFor(async () => (await get('entity=items&id=100')).status === 429,
      { timeout: 5000, what: 'the third call to be refused' });
    const refused = await get('entity=items&id=100');
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.json.code, 8);
    // The browser gives up: the gateway cancels upstream and the server frees
    // the places, so calls are accepted again (long before the 15 s timeout).
    for (const c of controllers) c.abort();
    await Promise.all(waiting);
    await waitFor(async () => (await get('entity=items&id=100')).status === 200,
      { timeout: 5000, what: 'a place to be free again' });
  });

  test('keep-alive: the connection serves further requests after the answer', async () => {
    const socket = net.connect(stack.gatewayPort, '127.0.0.1');
    await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
    let received = '';
    socket.on('data', (chunk) => { received += chunk.toString('utf8'); });
    // Two requests at once (pipelined): the long poll answers, then /healthz.
    socket.write('GET /v1/await?entity=items&id=100&after_version=1&timeout_ms=300 HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => received.includes('ok\n'), { timeout: 5000, what: 'both answers' });
    socket.destroy();
    const answers = received.split(/(?=HTTP\/1\.1 )/);
    assert.equal(answers.length, 2, received);
    assert.match(answers[0], /^HTTP\/1\.1 200/);
    assert.match(answers[0], /"type":"timeout"/);
    assert.match(answers[1], /^HTTP\/1\.1 200/);
  });
});
