// Test harness of the gateway conformance and end-to-end tests (tests/web/).
//
// It starts real processes from Bazel outputs in $ENTITYSYNC_BIN (default
// <repo>/bazel-bin) on loopback ports, in a fresh temporary directory: the
// example SQLite resolver (`items serve`), `entitysync-server` with a resolver
// table for "items", and `entitysync-gateway`. Everything it starts is killed
// at the end, also when a test fails or the test process is interrupted.
//
// It also has small clients: WsClient (a WebSocket that queues what it
// receives), the protobuf types (protobufjs) and a FileDescriptorSet of the
// public API plus the gateway's EntitySyncWeb service (for connect-web).
//
// Nothing here sleeps for a fixed time to let something happen: waitFor()
// polls a condition until a deadline.

import { execFile, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import protobuf from 'protobufjs';
import WebSocket from 'ws';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.resolve(ROOT, process.env.ENTITYSYNC_BIN || 'bazel-bin');
export const BINARIES = {
  items: path.join(BIN, 'examples/items/items'),
  server: path.join(BIN, 'server/entitysync-server'),
  cli: path.join(BIN, 'client/entitysync'),
  gateway: path.join(BIN, 'adapters/gateway/entitysync-gateway'),
};
export const ARTIFACTS_DIR = path.resolve(
  ROOT, process.env.TEST_ARTIFACTS_DIR || 'tests/web/artifacts');

/**
 * ENTITYSYNC_WEB_HOSTED=1: Stack.start hosts the gateway in the server
 * (--gateway_address, browsers straight on its session core) unless a
 * suite asks otherwise; scripts/test runs the protocol suites both ways.
 */
export const HOSTED = process.env.ENTITYSYNC_WEB_HOSTED === '1';

/** `skip` option for suites that need the gateway: false, or why they skip. */
export const skipWithoutGateway = (() => {
  for (const [name, file] of Object.entries(BINARIES)) {
    if (!fs.existsSync(file)) return `${name} is not built (${file}); run bazel build //...`;
  }
  return false;
})();

// ---------------------------------------------------------------------------
// Waiting

/**
 * Polls `check` (sync or async) until it returns a truthy value, which is
 * returned. A check that throws counts as "not yet"; the last error is
 * reported when the deadline passes.
 */
export async function waitFor(check, { timeout = 5000, interval = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      lastError = undefined;
    } catch (err) {
      if (err?.fatal) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError ? `; last error: ${lastError.message ?? lastError}` : '';
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${why}`);
    }
    await delay(interval);
  }
}

/** An error that makes waitFor() give up at once (e.g. the process died). */
export function fatal(message) {
  const err = new Error(message);
  err.fatal = true;
  return err;
}

/** Resolves after `ms`. Only for polling and for "nothing more arrives" windows. */
export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A loopback TCP port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** true when something accepts TCP connections on 127.0.0.1:port. */
export function canConnect(port, timeout = 500) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeout, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

// ---------------------------------------------------------------------------
// Processes

const liveProcs = new Set();
const tempDirs = new Set();

function killEverything() {
  for (const proc of liveProcs) {
    try {
      proc.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  liveProcs.clear();
  if (process.env.ENTITYSYNC_KEEP_TMP) return;
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', killEverything);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killEverything();
    process.exit(128 + (os.constants.signals[signal] ?? 1));
  });
}

/** One child process; its stdout and stderr go to `logFile` and to `output`. */
export class Proc {
  constructor(name, command, args, { cwd = ROOT, env = process.env, logFile } = {}) {
    this.name = name;
    this.command = command;
    this.args = args;
    this.output = '';
    this.exit = null; // {code, signal} once exited
    this.log = logFile ? fs.createWriteStream(logFile, { flags: 'a' }) : null;
    this.child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    liveProcs.add(this);
    const collect = (chunk) => {
      const text = chunk.toString();
      this.output += text;
      if (this.output.length > 1 << 20) this.output = this.output.slice(-(1 << 19));
      this.log?.write(chunk);
    };
    this.child.stdout.on('data', collect);
    this.child.stderr.on('data', collect);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        liveProcs.delete(this);
        resolve(this.exit);
      });
      this.child.once('error', (err) => {
        this.output += `\n[spawn error: ${err.message}]\n`;
        this.exit = { code: null, signal: null, error: err };
        liveProcs.delete(this);
        resolve(this.exit);
      });
    });
  }

  get pid() {
    return this.child.pid;
  }

  get alive() {
    return this.exit === null;
  }

  /** Waits until the output matches `regex`; returns the match. */
  async waitForOutput(regex, { timeout = 10000 } = {}) {
    return waitFor(
      () => {
        const m = this.output.match(regex);
        if (m) return m;
        if (!this.alive) {
          throw fatal(`${this.name} exited (${JSON.stringify(this.exit)}):\n${this.tail()}`);
        }
        return null;
      },
      { timeout, what: `${this.name} to print ${regex}` },
    ).catch((err) => {
      throw new Error(`${err.message}\n--- ${this.name} output:\n${this.tail()}`);
    });
  }

  /** Sends `signal`, waits up to `timeout` ms, then SIGKILL. Returns the exit. */
  async stop(signal = 'SIGTERM', { timeout = 5000 } = {}) {
    if (!this.alive) return this.exit;
    this.child.kill(signal);
    const timer = delay(timeout).then(() => 'timeout');
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
      this.exit.timedOut = true;
    }
    this.log?.end();
    return this.exit;
  }

  tail(lines = 40) {
    return this.output.split('\n').slice(-lines).join('\n');
  }
}

/** Runs a command to completion; resolves {stdout, stderr}, rejects on failure. */
export function run(command, args, { timeout = 10000, cwd = ROOT } = {}) {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout, cwd }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\n$ ${command} ${args.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`;
        reject(err);
      } else {
        resolve({ stdout, stderr });
      }
    });
  });
}

// ---------------------------------------------------------------------------
// The stack: resolver + server + gateway

/**
 * The real processes of one test file.
 *
 *   const stack = await Stack.start({ gateway: { max_subscriptions: 3 } });
 *   stack.wsUrl            // ws://127.0.0.1:G/ws/entity-sync/
 *   await stack.setItem('100', { name: 'X' })   // -> new version (notified)
 *   await stack.stop();
 *
 * Options: `seed` (default true: items 100, 101, 102), `server` (extra
 * server flags, an array), `gateway` (gateway flags as {name: value}, or
 * false to start none), `hosted` (true: no entitysync-gateway; the server
 * hosts the gateway with --gateway_address, browsers' streams straight on
 * its session core; `gateway` flags do not apply).
 */
export class Stack {
  constructor() {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'entitysync-web-'));
    tempDirs.add(this.tmp);
    this.db = path.join(this.tmp, 'items.db');
    this.procs = [];
    this.gateway = null;
    this.gatewayPort = null;
    this.gatewayFlags = {};
  }

  /** `resolver`: extra flags of `items serve`, e.g. ['--delay_ms=300'] for a slow backend. */
  static async start({ seed = true, server = [], gateway = {}, resolver = [], hosted = HOSTED } = {}) {
    const stack = new Stack();
    stack.resolverFlags = resolver;
    try {
      if (seed) await stack.items('seed');
      await stack.startResolver();
      if (hosted) {
        const port = await freePort();
        // The hosted gateway's flags are the standalone one's with a prefix.
        const gatewayFlags = Object.entries(gateway || {})
          .filter(([, value]) => value !== undefined && value !== null)
          .map(([name, value]) => `--gateway_${name}=${value}`);
        await stack.startServer([...server, ...gatewayFlags, `--gateway_address=127.0.0.1:${port}`]);
        await waitFor(() => canConnect(port),
          { timeout: 10000, what: `the hosted gateway on port ${port}` });
        stack.gateway = stack.server;
        stack.gatewayPort = port;
      } else {
        await stack.startServer(server);
        if (gateway !== false) await stack.startGateway(gateway);
      }
    } catch (err) {
      await stack.stop();
      throw err;
    }
    return stack;
  }

  spawn(name, command, args) {
    const proc = new Proc(name, command, args, { logFile: path.join(this.tmp, `${name}.log`) });
    this.procs.push(proc);
    return proc;
  }

  /** Starts `items serve`; `listen` defaults to a port of the kernel's choice. */
  async startResolver(listen = this.resolverAddress ?? '127.0.0.1:0') {
    this.resolver = this.spawn('resolver', BINARIES.items,
      ['serve', `--db=${this.db}`, `--listen=${listen}`, ...(this.resolverFlags ?? [])]);
    const m = await this.resolver.waitForOutput(/items resolver listening on (\S+)/);
    this.resolverAddress = m[1];
  }

  async startServer(extraFlags = []) {
    this.config = path.join(this.tmp, 'resolvers.textproto');
    fs.writeFileSync(this.config,
      `entities { name: "items" resolver { target: "${this.resolverAddress}" timeout_ms: 2000 } }\n`);
    this.server = this.spawn('server', BINARIES.server, [
      `--config=${this.config}`,
      '--public_address=127.0.0.1:0',
      '--internal_address=127.0.0.1:0',
      '--metrics_address=127.0.0.1:0',
      ...extraFlags,
    ]);
    const m = await this.server.waitForOutput(
      /public \(Subscribe\) on port (\d+), internal \(Notify, health\) on port (\d+)/);
    this.publicPort = Number(m[1]);
    this.internalPort = Number(m[2]);
    this.publicAddress = `127.0.0.1:${this.publicPort}`;
    this.internalAddress = `127.0.0.1:${this.internalPort}`;
  }

  /**
   * Starts the gateway with `flags` ({max_subscriptions: 3, idle_timeout:
   * '2s', ...}; `address` and `upstream` default to a free port and the
   * server) and waits until it accepts TCP connections.
   */
  async startGateway(flags = this.gatewayFlags, { port = this.gatewayPort, name = 'gateway' } = {}) {
    port ??= await freePort();
    const args = [`--address=127.0.0.1:${port}`, `--upstream=${this.publicAddress}`];
    for (const [key, value] of Object.entries(flags)) {
      if (value === undefined || value === null) continue;
      args.push(`--${key}=${value}`);
    }
    const proc = this.spawn(name, BINARIES.gateway, args);
    await waitFor(
      async () => {
        if (!proc.alive) throw fatal(`${name} exited: ${JSON.stringify(proc.exit)}\n${proc.tail()}`);
        return canConnect(port);
      },
      { timeout: 10000, what: `the gateway to accept connections on port ${port}` },
    ).catch((err) => {
      throw new Error(`${err.message}\n--- gateway output:\n${proc.tail()}`);
    });
    if (name === 'gateway') {
      this.gateway = proc;
      this.gatewayPort = port;
      this.gatewayFlags = flags;
    }
    return { proc, port };
  }

  async stopGateway(signal = 'SIGTERM') {
    const exit = await this.gateway?.stop(signal);
    return exit;
  }

  /** Stops the gateway and starts it again on the same port with the same flags. */
  async restartGateway(signal = 'SIGTERM') {
    await this.stopGateway(signal);
    return this.startGateway(this.gatewayFlags, { port: this.gatewayPort });
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.gatewayPort}`;
  }

  get origin() {
    return this.httpUrl;
  }

  wsUrl(pathname = '/ws/entity-sync/') {
    return `ws://127.0.0.1:${this.gatewayPort}${pathname}`;
  }

  /** Runs the `items` command against this stack's database. */
  items(command, ...flags) {
    return run(BINARIES.items, [command, `--db=${this.db}`, ...flags]);
  }

  /**
   * `items set` (and Notify unless notify is false); returns the new version.
   * fields: name, price_cents, tags (array), acl (array).
   */
  async setItem(id, { name, price_cents, tags, acl, notify = true } = {}) {
    const flags = [`--id=${id}`];
    if (name !== undefined) flags.push(`--name=${name}`);
    if (price_cents !== undefined) flags.push(`--price_cents=${price_cents}`);
    if (tags !== undefined) flags.push(`--tags=${tags.join(',')}`);
    if (acl !== undefined) flags.push(`--acl=${acl.join(',')}`);
    flags.push(`--notify=${notify ? this.internalAddress : ''}`);
    const { stdout } = await this.items('set', ...flags);
    return parseVersion(stdout, id);
  }

  /** `items delete` (and Notify); returns the tombstone's version. */
  async deleteItem(id, { notify = true } = {}) {
    const { stdout } = await this.items('delete', `--id=${id}`,
      `--notify=${notify ? this.internalAddress : ''}`);
    return parseVersion(stdout, id);
  }

  /** The exact bytes the resolver sends as the first row of an item. */
  static itemJson({ id, name, price_cents, version }) {
    return `{"id":${JSON.stringify(id)},"name":${JSON.stringify(name)},` +
      `"price_cents":${price_cents},"version":${version}}`;
  }

  /** Output of every process, for failure messages. */
  logs(lines = 30) {
    return this.procs.map((p) => `--- ${p.name} (pid ${p.pid}, exit ${JSON.stringify(p.exit)}):\n${p.tail(lines)}`)
      .join('\n');
  }

  async stop() {
    await Promise.all(this.procs.map((p) => p.stop('SIGTERM', { timeout: 3000 })));
    if (!process.env.ENTITYSYNC_KEEP_TMP) {
      fs.rmSync(this.tmp, { recursive: true, force: true });
      tempDirs.delete(this.tmp);
    }
  }
}

function parseVersion(stdout, id) {
  const m = stdout.match(new RegExp(`items/${id} version (\\d+)`));
  if (!m) throw new Error(`no version in items output: ${stdout}`);
  return Number(m[1]);
}

/** The seeded items as `items seed` creates them (versions 1, 2, 3). */
export const SEEDED = {
  100: { id: '100', name: 'Espresso cup', price_cents: 450, tags: ['kitchen', 'ceramic'] },
  101: { id: '101', name: 'Desk lamp', price_cents: 2999, tags: ['office', 'lighting', 'led'] },
  102: { id: '102', name: 'Notebook', price_cents: 799, tags: ['office', 'paper'] },
};

// ---------------------------------------------------------------------------
// HTTP

/** A plain HTTP request; resolves {status, headers, body}. */
export async function httpRequest(url, { method = 'GET', headers = {}, body, timeout = 5000 } = {}) {
  const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(timeout) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

// ---------------------------------------------------------------------------
// Inbox: messages of a stream, taken by predicate

/** Collects messages (e.g. of a grpc-web stream) and lets a test wait for them. */
export class Inbox {
  constructor() {
    this.items = []; // {value, taken}
    this.error = null;
    this.ended = false;
    this.waiters = new Set();
  }

  push(value) {
    this.items.push({ value, taken: false });
    this.wake();
  }

  fail(error) {
    this.error = error;
    this.wake();
  }

  end() {
    this.ended = true;
    this.wake();
  }

  wake() {
    for (const w of this.waiters) w();
  }

  all() {
    return this.items.map((i) => i.value);
  }

  /** The first untaken message for which pred holds; others stay. */
  take(pred = () => true, { timeout = 5000, what = 'a matching message' } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const item = this.items.find((i) => !i.taken && pred(i.value));
        if (item) {
          item.taken = true;
          done();
          resolve(item.value);
        } else if (this.error || this.ended) {
          done();
          reject(new Error(`stream ${this.error ? `failed (${this.error.code ?? ''} ${this.error.message})` : 'ended'} ` +
            `while waiting for ${what}; messages: ${JSON.stringify(this.all())}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; messages: ${JSON.stringify(this.all())}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }
}

// ---------------------------------------------------------------------------
// WebSocket client

/**
 * A WebSocket that records every frame it receives. Frames are consumed with
 * next() (strictly in order) or take(pred) (the first unconsumed frame that
 * matches; others stay queued).
 */
export class WsClient {
  /**
   * Opens `url`. Options: protocols (array), origin, headers, autoPong
   * (default true; false: never answer pings), timeout. Rejects when the
   * upgrade is refused; the error has `status` (the HTTP status).
   */
  static open(url, { protocols = [], origin, headers = {}, autoPong = true, timeout = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, {
        origin,
        headers,
        autoPong,
        handshakeTimeout: timeout,
        maxPayload: 64 << 20,
      });
      const client = new WsClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (req, res) => {
        const err = new Error(`upgrade of ${url} refused with HTTP ${res.statusCode}`);
        err.status = res.statusCode;
        err.headers = res.headers;
        res.resume();
        ws.terminate();
        reject(err);
      });
      ws.once('error', (err) => reject(err));
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.frames = []; // {data: string|Buffer, binary: boolean, consumed: boolean}
    this.closeInfo = null;
    this.errors = [];
    this.pings = 0;
    this.waiters = new Set();
    ws.on('message', (data, isBinary) => {
      this.frames.push({ data: isBinary ? Buffer.from(data) : data.toString('utf8'), binary: isBinary, consumed: false });
      this.notify();
    });
    ws.on('ping', () => {
      this.pings += 1;
      this.notify();
    });
    ws.on('error', (err) => {
      this.errors.push(err);
      this.notify();
    });
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        this.notify();
        resolve(this.closeInfo);
      });
    });
  }

  get protocol() {
    return this.ws.protocol;
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  notify() {
    for (const wake of this.waiters) wake();
  }

  /** Resolves when `check()` is truthy, or rejects after `timeout` ms. */
  until(check, { timeout = 5000, what = 'condition' } = {}) {
    return new Promise((resolve, reject) => {
      const wake = () => {
        let value;
        try {
          value = check();
        } catch (err) {
          finish();
          reject(err);
          return;
        }
        if (value) {
          finish();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; ` +
          `close: ${JSON.stringify(this.closeInfo)}; unconsumed frames: ${this.describePending()}`));
      }, timeout);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
      };
      this.waiters.add(wake);
      wake();
    });
  }

  describePending(max = 10) {
    const pending = this.frames.filter((f) => !f.consumed).slice(0, max);
    return JSON.stringify(pending.map((f) => (f.binary ? `<binary ${f.data.toString('hex')}>` : f.data)));
  }

  /** The next unconsumed frame, in order. */
  next({ timeout = 5000, what = 'the next frame' } = {}) {
    return this.until(() => {
      const frame = this.frames.find((f) => !f.consumed);
      if (frame) {
        frame.consumed = true;
        return frame;
      }
      if (this.closeInfo) throw new Error(`connection closed ${JSON.stringify(this.closeInfo)} while waiting for ${what}`);
      return null;
    }, { timeout, what });
  }

  /** The next unconsumed frame, which must be a text frame. */
  async nextText(opts) {
    const frame = await this.next(opts);
    if (frame.binary) throw new Error(`expected a text frame, got binary ${frame.data.toString('hex')}`);
    return frame.data;
  }

  async nextJson(opts) {
    const text = await this.nextText(opts);
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`expected JSON, got ${text}`);
    }
  }

  /**
   * The first unconsumed frame for which `pred(decoded)` holds, decoded with
   * `decode` (default: JSON for text frames); frames before it stay queued.
   */
  take(pred, { timeout = 5000, what = 'a matching frame', decode = decodeFrame } = {}) {
    return this.until(() => {
      for (const frame of this.frames) {
        if (frame.consumed) continue;
        const value = decode(frame);
        if (pred(value)) {
          frame.consumed = true;
          return { value };
        }
      }
      if (this.closeInfo) throw new Error(`connection closed ${JSON.stringify(this.closeInfo)} while waiting for ${what}; frames: ${this.describePending()}`);
      return null;
    }, { timeout, what }).then((r) => r.value);
  }

  /** Every frame received so far, decoded (consumed or not). */
  all(decode = decodeFrame) {
    return this.frames.map((f) => decode(f));
  }

  /** Frames received after the first `mark` frames (mark = ws.frames.length earlier), decoded. */
  since(mark, decode = decodeFrame) {
    return this.frames.slice(mark).map((f) => decode(f));
  }

  /** Marks every frame received so far as consumed. */
  drain() {
    for (const f of this.frames) f.consumed = true;
  }

  sendJson(value) {
    this.ws.send(JSON.stringify(value));
  }

  sendText(text) {
    this.ws.send(text, { binary: false });
  }

  sendBinary(bytes) {
    this.ws.send(bytes, { binary: true });
  }

  /** Waits for the connection to close; resolves {code, reason}. */
  waitClose({ timeout = 5000 } = {}) {
    return this.until(() => this.closeInfo, { timeout, what: 'the connection to close' });
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
    }
  }
}

function decodeFrame(frame) {
  if (frame.binary) return frame.data;
  try {
    return JSON.parse(frame.data);
  } catch {
    return frame.data;
  }
}

// ---------------------------------------------------------------------------
// Protobuf

const PROTO_DIR = path.join(ROOT, 'proto');

/** PROTOCOL.md's EntitySyncWeb, used until proto/entitysync/v1/gateway.proto exists. */
export const GATEWAY_PROTO_FALLBACK = `syntax = "proto3";
package entitysync.v1;
import "entitysync/v1/entitysync.proto";
service EntitySyncWeb {
  rpc Watch(WatchRequest) returns (stream SubscribeResponse);
}
message WatchRequest {
  repeated WatchKey keys = 1;
  string secret = 2;
}
message WatchKey {
  EntityKey key = 1;
  uint64 known_version = 2;
}
`;

let protoIncludes;
/** Include paths and the gateway.proto file to compile (the repo's, or PROTOCOL.md's). */
function gatewayProto() {
  if (protoIncludes) return protoIncludes;
  const inRepo = path.join(PROTO_DIR, 'entitysync/v1/gateway.proto');
  if (fs.existsSync(inRepo)) {
    protoIncludes = { includes: [PROTO_DIR], file: 'entitysync/v1/gateway.proto', fromRepo: true };
  } else {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'entitysync-proto-'));
    tempDirs.add(dir);
    fs.mkdirSync(path.join(dir, 'entitysync/v1'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'entitysync/v1/gateway.proto'), GATEWAY_PROTO_FALLBACK);
    protoIncludes = { includes: [dir, PROTO_DIR], file: 'entitysync/v1/gateway.proto', fromRepo: false };
  }
  return protoIncludes;
}

let protoRoot;
/** protobufjs Root with entitysync.proto and the gateway's messages. */
export function protos() {
  if (protoRoot) return protoRoot;
  const { includes, file } = gatewayProto();
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const dir of includes) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync([file, 'entitysync/v1/entitysync.proto'], { keepCase: true });
  root.resolveAll();
  protoRoot = {
    root,
    SubscribeRequest: root.lookupType('entitysync.v1.SubscribeRequest'),
    SubscribeResponse: root.lookupType('entitysync.v1.SubscribeResponse'),
    WatchRequest: root.lookupType('entitysync.v1.WatchRequest'),
  };
  return protoRoot;
}

/** Encodes a SubscribeRequest given as a plain object (protobufjs field names). */
export function encodeSubscribeRequest(obj) {
  const { SubscribeRequest } = protos();
  const err = SubscribeRequest.verify(obj);
  if (err) throw new Error(`bad SubscribeRequest ${JSON.stringify(obj)}: ${err}`);
  return Buffer.from(SubscribeRequest.encode(SubscribeRequest.fromObject(obj)).finish());
}

/**
 * Decodes a SubscribeResponse into a plain object with `kind` (the oneof
 * case), uint64s as Numbers and bytes as Buffers.
 */
export function decodeSubscribeResponse(bytes) {
  const { SubscribeResponse } = protos();
  const msg = SubscribeResponse.decode(bytes);
  return SubscribeResponse.toObject(msg, { longs: Number, bytes: Buffer, oneofs: true, defaults: true });
}

let descriptorSet;
/** FileDescriptorSet (bytes) of entitysync.proto + gateway.proto, made with the system protoc. */
export function descriptorSetBytes() {
  if (descriptorSet) return descriptorSet;
  const { includes, file } = gatewayProto();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'entitysync-fds-'));
  tempDirs.add(dir);
  const out = path.join(dir, 'gateway.fds');
  const result = spawnSync('protoc', [
    ...includes.map((i) => `-I${i}`),
    '--include_imports',
    `--descriptor_set_out=${out}`,
    file,
  ], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`protoc failed (${result.status}): ${result.error ?? ''} ${result.stderr}`);
  }
  descriptorSet = fs.readFileSync(out);
  return descriptorSet;
}

/** Whether gateway.proto came from the repository (else from PROTOCOL.md). */
export function gatewayProtoFromRepo() {
  return gatewayProto().fromRepo;
}
