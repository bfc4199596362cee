// @entitysync/web: a small, dependency-free browser client for entitysync's
// gateway (adapters/gateway/PROTOCOL.md), in the enveloped WebSocket mode
// (subprotocol `entitysync.v1.json`).
//
//   const client = new EntitySyncClient({url: `ws://${location.host}/ws/entity-sync/`});
//   const unsubscribe = client.subscribe({entity: 'items', id: '100'}, (u) => {...});
//
// Connection: one WebSocket, kept until close(). The first attempt is made
// right away. After every close the client did not ask for (any code,
// including 1012, 1013 and 4xxx, or a failed attempt) it waits a delay drawn
// uniformly from [0, ceiling] (full jitter) and connects again; the ceiling
// starts at backoffInitialMs and doubles per attempt up to backoffMaxMs. It
// goes back to backoffInitialMs once a connection delivers a message or has
// been open for STABLE_MS. A 1012 close (the upstream replica is draining or
// restarting) reconnects after a random delay of at most drainReconnectMs
// instead, leaving the ceiling alone.
//
// Subscriptions: subscribe() works at any time, also while disconnected (the
// key is sent once a connection is open); one subscription per key (a second
// subscribe of the same key throws until the first is unsubscribed).
//
// Every (re)connect first sends the `secret` (when given), then a `subscribe`
// with a fresh request_id for every held key. A concrete key is resubscribed
// with known_version = the last version delivered for it, so the server only
// sends what changed; a wildcard (id "*") is resubscribed without one.
//
// Ordering: per subscription and concrete key, onUpdate never sees a version
// that is not greater than the last one it saw; such updates are dropped,
// except one at the same version right after onStale for that key: the
// server's refresh saying the rows are current again.
// Versions are JSON numbers, or decimal strings from 2^53 up, and are
// compared as BigInt. A wildcard's snapshot comes with key id "*" (its
// rows are whatever the resolver lists for the whole entity); later updates
// carry the concrete key. When a key and its entity's wildcard are both
// subscribed, both callbacks get the key's updates.
//
// Errors: an `error` answering a subscribe goes to that subscription's
// onError (else the client's onError) with final = true, and the
// subscription is dropped, except 14 UNAVAILABLE, which is retried with its
// own backoff (final = false), and 6 ALREADY_EXISTS, which counts as
// subscribed. An error the server sends on its own about a held key (e.g.
// authorization revoked) is handled alike, but UNAVAILABLE is only reported.
// Anything else (bad frames, errors answering the secret, exceptions thrown
// by callbacks) goes to the client's onError. A `superseded` error (a
// subscribe replaced by a later request for its key before its snapshot)
// is no failure: the later request's answer counts, and nothing is reported.

export interface EntityKey {
  entity: string;
  id: string;
}

/** One row of an update: `json` when its bytes are JSON, else `text`, else `base64`. */
export interface Row {
  contentType: string;
  json?: unknown;
  text?: string;
  base64?: string;
}

/** A number below 2^53, else a decimal string. */
export type Version = number | string;

/** Full state of one key. `removed`: the entity does not exist; rows is empty. */
export interface Update {
  key: EntityKey;
  version: Version;
  removed: boolean;
  rows: Row[];
}

/** An `error` message of the server; code is a google.rpc.Code value. */
export interface ServerError {
  code: number;
  status: string;
  message: string;
  key?: EntityKey;
  requestId: number;
}

export type Status = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** With 'reconnecting': the close code and reason, and the delay before the next attempt. */
export interface StatusDetail {
  code?: number;
  reason?: string;
  delayMs?: number;
}

/** What the client needs of a WebSocket (the browser's, or the `ws` package's). */
export interface WebSocketLike {
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface ClientOptions {
  /** ws://host:port/ws/entity-sync/ (or wss://). */
  url: string;
  /** Sent as a `secret` message right after every (re)connect, before any subscribe. */
  secret?: string;
  /** Reconnect and retry backoff ceilings; defaults 250 and 10000. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** After a 1012 close, reconnect within a random delay up to this; default min(1000, backoffMaxMs). */
  drainReconnectMs?: number;
  /** Defaults to globalThis.WebSocket; pass the `ws` package's class in Node. */
  WebSocket?: WebSocketConstructor;
  onStatus?: (status: Status, detail?: StatusDetail) => void;
  /** Errors not tied to a subscription. */
  onError?: (err: ServerError | Error) => void;
}

export interface SubscribeOptions {
  /** The key could not be resolved; its last update may be out of date. */
  onStale?: (key: EntityKey, reason: string) => void;
  /** final: the subscription was dropped; else it is retried. */
  onError?: (err: ServerError, final: boolean) => void;
  /** The server answered `subscribed` (after every reconnect too). */
  onSubscribed?: (key: EntityKey) => void;
}

export const SUBPROTOCOL = 'entitysync.v1.json';
const STABLE_MS = 5000;
const ALREADY_EXISTS = 6;
const UNAVAILABLE = 14;

interface Subscription {
  key: EntityKey;
  name: string;
  onUpdate: (update: Update) => void;
  options: SubscribeOptions;
  state: 'unsent' | 'sent' | 'live' | 'retry';
  delivered: Map<string, bigint>; // last delivered version per concrete id
  stale: Set<string>; // ids announced stale and not refreshed since
  retryCeiling: number;
  retryTimer?: ReturnType<typeof setTimeout>;
}

interface Pending {
  kind: 'subscribe' | 'unsubscribe' | 'secret';
  sub?: Subscription;
}

function keyName(key: EntityKey): string {
  return JSON.stringify([key.entity, key.id]);
}

function toKey(value: any): EntityKey | undefined {
  if (!value || typeof value.entity !== 'string' || typeof value.id !== 'string') return undefined;
  return { entity: value.entity, id: value.id };
}

function toRow(value: any): Row {
  if (!value || typeof value !== 'object') return { contentType: '' };
  const row: Row = { contentType: String(value.content_type ?? '') };
  if ('json' in value) row.json = value.json;
  else if (typeof value.text === 'string') row.text = value.text;
  else if (typeof value.base64 === 'string') row.base64 = value.base64;
  return row;
}

export class EntitySyncClient {
  private readonly url: string;
  private readonly secret?: string;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly drainMs: number;
  private readonly WS: WebSocketConstructor;
  private readonly onStatus?: ClientOptions['onStatus'];
  private readonly onError?: ClientOptions['onError'];

  private readonly subs = new Map<string, Subscription>();
  private readonly pending = new Map<number, Pending>(); // on the current socket
  private socket: WebSocketLike | null = null;
  private open = false;
  private closed = false;
  private nextRequestId = 1;
  private ceiling: number;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private stableTimer?: ReturnType<typeof setTimeout>;

  constructor(options: ClientOptions) {
    const WS = options.WebSocket ?? (globalThis as any).WebSocket;
    if (typeof WS !== 'function') throw new Error('no WebSocket: pass options.WebSocket');
    this.url = options.url;
    this.secret = options.secret;
    this.initialMs = Math.max(1, options.backoffInitialMs ?? 250);
    this.maxMs = Math.max(this.initialMs, options.backoffMaxMs ?? 10000);
    this.drainMs = Math.max(0, options.drainReconnectMs ?? Math.min(1000, this.maxMs));
    this.WS = WS;
    this.onStatus = options.onStatus;
    this.onError = options.onError;
    this.ceiling = this.initialMs;
    // Started after the constructor returns, so callbacks may use the client.
    this.reconnectTimer = setTimeout(() => {
      this.setStatus('connecting');
      this.connect();
    }, 0);
  }

  /** Subscribes `key` (id "*": every id of the entity); returns a function that unsubscribes. */
  subscribe(key: EntityKey, onUpdate: (update: Update) => void, options: SubscribeOptions = {}): () => void {
    if (this.closed) throw new Error('entitysync: client is closed');
    if (!key || !key.entity || !key.id) throw new Error('entitysync: key needs an entity and an id');
    const name = keyName(key);
    if (this.subs.has(name)) throw new Error(`entitysync: already subscribed to ${key.entity}/${key.id}`);
    const sub: Subscription = {
      key: { entity: key.entity, id: key.id }, name, onUpdate, options,
      state: 'unsent', delivered: new Map(), stale: new Set(), retryCeiling: this.initialMs,
    };
    this.subs.set(name, sub);
    if (this.open) this.sendSubscribe(sub);
    return () => this.unsubscribe(sub);
  }

  /** Closes the connection for good: no reconnect, no callback but onStatus('closed'). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    for (const sub of this.subs.values()) clearTimeout(sub.retryTimer);
    this.subs.clear();
    this.pending.clear();
    const socket = this.socket;
    this.socket = null;
    this.open = false;
    if (socket) {
      try {
        socket.close(1000, 'client closed');
      } catch {
        // Already closing.
      }
    }
    this.setStatus('closed');
  }

  private connect(): void {
    this.reconnectTimer = undefined;
    if (this.closed) return;
    let socket: WebSocketLike;
    try {
      socket = new this.WS(this.url, SUBPROTOCOL);
    } catch (e) {
      this.report(e);
      this.scheduleReconnect(0, String(e));
      return;
    }
    this.socket = socket;
    // Handlers of an abandoned socket do nothing.
    socket.onopen = () => this.socket === socket && this.handleOpen(socket);
    socket.onmessage = (ev) => this.socket === socket && this.handleMessage(ev.data);
    socket.onerror = () => {}; // a close event follows
    socket.onclose = (ev) => this.socket === socket && this.handleClose(ev.code, ev.reason);
  }

  private handleOpen(socket: WebSocketLike): void {
    if (socket.protocol !== SUBPROTOCOL) {
      this.report(new Error(`entitysync: the server did not accept subprotocol ${SUBPROTOCOL}`));
      socket.close(1000, 'subprotocol not accepted');
      return;
    }
    this.open = true;
    this.setStatus('open');
    this.stableTimer = setTimeout(() => (this.ceiling = this.initialMs), STABLE_MS);
    if (this.secret !== undefined) {
      const id = this.request({ kind: 'secret' });
      this.send(`{"action":"secret","request_id":${id},"body":${JSON.stringify(this.secret)}}`);
    }
    for (const sub of this.subs.values()) {
      if (sub.state === 'unsent') this.sendSubscribe(sub);
    }
  }

  private handleClose(code: number, reason: string): void {
    this.socket = null;
    this.open = false;
    clearTimeout(this.stableTimer);
    this.pending.clear();
    for (const sub of this.subs.values()) {
      clearTimeout(sub.retryTimer);
      sub.state = 'unsent';
    }
    this.scheduleReconnect(code, reason);
  }

  private scheduleReconnect(code: number, reason: string): void {
    let delay: number;
    if (code === 1012) {
      delay = Math.random() * this.drainMs;
    } else {
      delay = Math.random() * this.ceiling;
      this.ceiling = Math.min(this.ceiling * 2, this.maxMs);
    }
    this.setStatus('reconnecting', { code, reason, delayMs: Math.round(delay) });
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private handleMessage(data: unknown): void {
    this.ceiling = this.initialMs; // this connection works
    let msg: any;
    try {
      msg = JSON.parse(String(data));
    } catch {
      this.report(new Error('entitysync: a server frame is not JSON'));
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    const key = toKey(msg.key);
    switch (msg.type) {
      case 'subscribed': {
        const p = this.take(msg.request_id);
        if (p?.sub && this.current(p.sub)) this.markLive(p.sub);
        break;
      }
      case 'update':
        if (!key) break;
        for (const sub of this.matching(key)) {
          this.deliver(sub, {
            key, version: msg.version, removed: msg.removed === true,
            rows: Array.isArray(msg.rows) ? msg.rows.map(toRow) : [],
          });
        }
        break;
      case 'stale':
        if (!key) break;
        for (const sub of this.matching(key)) {
          sub.stale.add(key.id);
          this.call(() => sub.options.onStale?.(key, String(msg.reason ?? '')));
        }
        break;
      case 'unsubscribed':
      case 'authenticated':
        this.take(msg.request_id);
        break;
      case 'error':
        this.handleError(msg, key);
        break;
    }
  }

  private handleError(msg: any, key: EntityKey | undefined): void {
    const err: ServerError = {
      code: Number(msg.code), status: String(msg.status ?? ''), message: String(msg.message ?? ''),
      requestId: Number(msg.request_id ?? 0),
    };
    if (key) err.key = key;
    const p = this.take(msg.request_id);
    if (msg.superseded === true) return;
    if (p?.kind === 'subscribe') {
      const sub = p.sub!;
      if (!this.current(sub)) return;
      if (err.code === ALREADY_EXISTS) {
        this.markLive(sub);
      } else if (err.code === UNAVAILABLE) {
        this.retryLater(sub);
        this.failed(sub, err, false);
      } else {
        this.drop(sub);
        this.failed(sub, err, true);
      }
      return;
    }
    if (p?.kind === 'unsubscribe' && err.code === 5) return; // NOT_FOUND: gone anyway
    const sub = !p && key ? this.subs.get(keyName(key)) : undefined;
    if (sub) {
      // Sent by the server on its own about a held key.
      if (err.code !== UNAVAILABLE) this.drop(sub);
      this.failed(sub, err, err.code !== UNAVAILABLE);
      return;
    }
    this.report(err);
  }

  private deliver(sub: Subscription, update: Update): void {
    let version: bigint;
    try {
      version = BigInt(update.version);
    } catch {
      this.report(new Error(`entitysync: bad version ${JSON.stringify(update.version)}`));
      return;
    }
    const last = sub.delivered.get(update.key.id);
    // After `stale`, the server refreshes at the same version when the rows
    // did not change meanwhile: that update means "current again".
    const refresh = version === last && sub.stale.has(update.key.id);
    if (last !== undefined && version <= last && !refresh) return;
    sub.stale.delete(update.key.id);
    sub.delivered.set(update.key.id, version);
    this.call(() => sub.onUpdate(update));
  }

  /** The subscriptions an update or stale of `key` is for: the key's and its entity's wildcard. */
  private matching(key: EntityKey): Subscription[] {
    const out: Subscription[] = [];
    const exact = this.subs.get(keyName(key));
    if (exact) out.push(exact);
    if (key.id !== '*') {
      const wildcard = this.subs.get(keyName({ entity: key.entity, id: '*' }));
      if (wildcard) out.push(wildcard);
    }
    return out;
  }

  private sendSubscribe(sub: Subscription): void {
    const id = this.request({ kind: 'subscribe', sub });
    sub.state = 'sent';
    const known = sub.key.id === '*' ? undefined : sub.delivered.get(sub.key.id);
    // Written by hand so that versions from 2^53 up stay exact JSON integers.
    const body = `{"entity":${JSON.stringify(sub.key.entity)},"id":${JSON.stringify(sub.key.id)}` +
      (known !== undefined ? `,"known_version":${known.toString()}` : '') + '}';
    this.send(`{"action":"subscribe","request_id":${id},"body":${body}}`);
  }

  private unsubscribe(sub: Subscription): void {
    if (!this.current(sub)) return;
    const wasSent = sub.state === 'sent' || sub.state === 'live';
    this.drop(sub);
    if (this.open && wasSent) {
      const id = this.request({ kind: 'unsubscribe' });
      this.send(`{"action":"unsubscribe","request_id":${id},"body":${JSON.stringify(sub.key)}}`);
    }
  }

  private retryLater(sub: Subscription): void {
    sub.state = 'retry';
    const delay = Math.random() * sub.retryCeiling;
    sub.retryCeiling = Math.min(sub.retryCeiling * 2, this.maxMs);
    sub.retryTimer = setTimeout(() => {
      if (this.current(sub) && this.open && sub.state === 'retry') this.sendSubscribe(sub);
    }, delay);
  }

  private markLive(sub: Subscription): void {
    sub.state = 'live';
    sub.retryCeiling = this.initialMs;
    this.call(() => sub.options.onSubscribed?.(sub.key));
  }

  private failed(sub: Subscription, err: ServerError, final: boolean): void {
    if (sub.options.onError) this.call(() => sub.options.onError!(err, final));
    else this.report(err);
  }

  private drop(sub: Subscription): void {
    clearTimeout(sub.retryTimer);
    this.subs.delete(sub.name);
  }

  private current(sub: Subscription): boolean {
    return this.subs.get(sub.name) === sub;
  }

  private request(p: Pending): number {
    const id = this.nextRequestId++;
    this.pending.set(id, p);
    return id;
  }

  private take(requestId: unknown): Pending | undefined {
    const id = Number(requestId);
    const p = this.pending.get(id);
    this.pending.delete(id);
    return p;
  }

  private send(text: string): void {
    try {
      this.socket?.send(text);
    } catch {
      // The socket is closing; everything is sent again after the reconnect.
    }
  }

  private setStatus(status: Status, detail?: StatusDetail): void {
    this.call(() => this.onStatus?.(status, detail));
  }

  /** Runs a user callback; what it throws goes to onError, never into the client. */
  private call(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.report(e);
    }
  }

  /** To onError, else the console. */
  private report(err: unknown): void {
    const e = err !== null && typeof err === 'object' ? (err as Error | ServerError) : new Error(String(err));
    try {
      if (this.onError) this.onError(e);
      else console.error('entitysync:', e);
    } catch {
      // Nowhere left to report it.
    }
  }
}
