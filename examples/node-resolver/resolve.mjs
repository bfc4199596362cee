// The resolver logic, free of gRPC: what your entity-sync handler did.
//
// In entity-sync you registered, per entity type, a Go function that looked
// the key up and pushed the rows to the client:
//
//   func(key shared.EntityKey, secret string, push shared.ByteHandler) {
//       item := fetch(key)
//       b, _ := json.Marshal(item)
//       push(b)
//   }
//
// Here the same function returns the rows instead of pushing them, plus
// three things entitysync uses:
//
//   status    FOUND, NOT_FOUND (the client sees `removed`), or DENIED (the
//             client's subscribe fails with PERMISSION_DENIED)
//   version   orders updates exactly; ours come from the store
//   rows      in order; each becomes one WebSocket text frame for legacy
//             entity-sync clients
//
// and it answers many keys (all of one entity type) in one call.

export const ENTITY = 'items';
const JSON_ROW = 'application/json';

/** A failure of the whole call; `code` is a gRPC status code. */
export class ResolveError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}
const INVALID_ARGUMENT = 3;

/**
 * entity-sync style authorization: the client's secret (the `secret`
 * WebSocket message, or the `authorization` header) must be on the item's
 * access list; an item without one is public.
 */
export function mayView(item, credentials) {
  return item.acl.length === 0 || item.acl.includes(credentials);
}

/**
 * SUBSCRIBE and REAUTHORIZE carry the subscriber's credentials: check them.
 * CHANGE carries none for a shared entity (one call on behalf of every
 * subscriber, each checked when it subscribed), so nothing is withheld then.
 * With `per_credentials: true` in the config, CHANGE carries them too.
 */
function mustAuthorize(reason, credentials) {
  return reason !== 'CHANGE' || credentials !== '';
}

function jsonRow(value) {
  return { content_type: JSON_ROW, data: Buffer.from(JSON.stringify(value)) };
}

/** The rows of one item: the item itself, then one row per tag. */
function itemRows(item) {
  const { id, name, price_cents, version } = item;
  return [jsonRow({ id, name, price_cents, version }), ...item.tags.map((tag) => jsonRow({ tag }))];
}

/** One key: the equivalent of the Go handler above. */
export function resolveKey(store, key, credentials, reason) {
  if (key.id === '*') {
    // A wildcard subscription: authorize the listing and return it.
    const visible = store.live()
      .filter((item) => !mustAuthorize(reason, credentials) || mayView(item, credentials));
    return {
      key,
      status: 'FOUND',
      version: store.lastVersion,
      rows: visible.map((item) => itemRows(item)[0]),
    };
  }
  const item = store.get(key.id);
  if (!item) return { key, status: 'NOT_FOUND', version: 0, rows: [] };
  // A deletion is versioned too, so a late update can never resurrect it.
  if (item.deleted) return { key, status: 'NOT_FOUND', version: item.version, rows: [] };
  if (mustAuthorize(reason, credentials) && !mayView(item, credentials)) {
    return { key, status: 'DENIED', version: 0, rows: [] };
  }
  return { key, status: 'FOUND', version: item.version, rows: itemRows(item) };
}

/** A whole ResolveRequest -> ResolveResponse (one result per key). */
export function resolve(store, { keys, credentials, reason }) {
  keys.forEach((key, i) => {
    if (key.entity !== ENTITY) {
      throw new ResolveError(INVALID_ARGUMENT,
        `keys[${i}]: entity "${key.entity}" is not served here (only "${ENTITY}")`);
    }
    if (key.id === '') throw new ResolveError(INVALID_ARGUMENT, `keys[${i}]: empty id`);
  });
  return { results: keys.map((key) => resolveKey(store, key, credentials, reason)) };
}
