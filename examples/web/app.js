// The demo page: lists every item (`items/*`) live, through the gateway's
// WebSocket. The gateway serves this directory at / and client/web/dist/ at
// /lib/.
//
// What arrives (see examples/items/items_resolve.cc):
// - the wildcard's snapshot, key {items, "*"}: one JSON row per live item,
//   {"id","name","price_cents","version"}; it replaces the whole list (after
//   a reconnect it is only sent when something changed);
// - then one update per changed item, key {items, ID}: first the item's row,
//   then a {"tag"} row per tag; `removed` when the item was deleted.
import { EntitySyncClient } from '/lib/entitysync.js';

const list = document.getElementById('items');
const statusEl = document.getElementById('status');
const emptyEl = document.getElementById('empty');
const noticeEl = document.getElementById('notice');

// `live` while the socket is open, `reconnecting` otherwise (the browser
// tests rely on these exact words).
function showStatus(status) {
  const text = status === 'open' ? 'live' : status === 'connecting' ? 'connecting' : 'reconnecting';
  statusEl.textContent = text;
  statusEl.className = text;
}

function showNotice(text) {
  noticeEl.textContent = text;
  noticeEl.hidden = !text;
}

// The item of an update: the first row whose JSON has an `id`.
function itemOf(rows) {
  for (const row of rows) {
    const json = row.json;
    if (json && typeof json === 'object' && !Array.isArray(json) && 'id' in json) return json;
  }
  return null;
}

function formatPrice(cents) {
  return typeof cents === 'number' ? `$${(cents / 100).toFixed(2)}` : '';
}

function findItem(id) {
  for (const li of list.children) {
    if (li.dataset.id === id) return li;
  }
  return null;
}

function upsertItem(id, item, version) {
  let li = findItem(id);
  if (!li) {
    li = document.createElement('li');
    li.dataset.id = id;
    const name = document.createElement('span');
    name.className = 'name';
    const price = document.createElement('span');
    price.className = 'price';
    li.append(name, price);
    // Keep the list ordered by id ("9" before "10").
    const next = [...list.children].find(
      (other) => other.dataset.id.localeCompare(id, undefined, { numeric: true }) > 0);
    list.insertBefore(li, next ?? null);
  }
  li.dataset.version = String(version);
  li.querySelector('.name').textContent = String(item.name ?? id);
  li.querySelector('.price').textContent = formatPrice(item.price_cents);
  li.classList.remove('stale');
  // Restart the highlight of a changed item.
  li.classList.remove('changed');
  void li.offsetWidth;
  li.classList.add('changed');
}

function removeItem(id) {
  findItem(id)?.remove();
}

function onUpdate(update) {
  if (update.key.id === '*') {
    // The full listing: it replaces what is shown.
    const seen = new Set();
    if (!update.removed) {
      for (const row of update.rows) {
        const item = itemOf([row]);
        if (!item) continue;
        const id = String(item.id);
        seen.add(id);
        upsertItem(id, item, item.version ?? update.version);
      }
    }
    for (const li of [...list.children]) {
      if (!seen.has(li.dataset.id)) li.remove();
    }
  } else if (update.removed) {
    removeItem(update.key.id);
  } else {
    const item = itemOf(update.rows);
    if (item) upsertItem(update.key.id, item, update.version);
  }
  emptyEl.hidden = list.children.length > 0;
  showNotice('');
}

function onStale(key, reason) {
  if (key.id === '*') {
    showNotice(`The list may be out of date: ${reason}`);
  } else {
    findItem(key.id)?.classList.add('stale');
  }
}

const secret = new URLSearchParams(location.search).get('secret');
const client = new EntitySyncClient({
  url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/entity-sync/`,
  secret: secret ?? undefined,
  onStatus: showStatus,
  onError: (err) => showNotice(`Error: ${err.message}`),
});

client.subscribe({ entity: 'items', id: '*' }, onUpdate, {
  onStale,
  onError: (err, final) => showNotice(`${final ? 'Cannot list items' : 'Retrying'}: ${err.status} ${err.message}`),
});
