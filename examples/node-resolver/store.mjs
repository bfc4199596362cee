// An in-memory item store: stands in for your database.
//
// Every write takes the next value of one store-wide counter as the item's
// version, so versions only go up, also across deletions (a deleted item
// keeps a tombstone with its deletion's version). That is all entitysync
// needs to order updates exactly.

/** The items `items seed` of the C++ example creates, with versions 1, 2, 3. */
export const SEED = [
  { id: '100', name: 'Espresso cup', price_cents: 450, tags: ['kitchen', 'ceramic'] },
  { id: '101', name: 'Desk lamp', price_cents: 2999, tags: ['office', 'lighting', 'led'] },
  { id: '102', name: 'Notebook', price_cents: 799, tags: ['office', 'paper'] },
];

export class ItemStore {
  #items = new Map(); // id -> {id, name, price_cents, tags, acl, version, deleted}
  #lastVersion = 0;

  constructor(seed = []) {
    for (const item of seed) this.put(item.id, item);
  }

  /** The item (live or tombstone), or undefined if it was never stored. */
  get(id) {
    const item = this.#items.get(id);
    return item && structuredClone(item);
  }

  /**
   * Creates or changes an item; fields left out keep their value. `acl`
   * lists the secrets that may see it (empty: everyone). Returns the item.
   */
  put(id, { name, price_cents, tags, acl } = {}) {
    const old = this.#items.get(id);
    const base = old && !old.deleted ? old : { name: '', price_cents: 0, tags: [], acl: [] };
    const item = {
      id,
      name: name ?? base.name,
      price_cents: price_cents ?? base.price_cents,
      tags: [...(tags ?? base.tags)],
      acl: [...(acl ?? base.acl)],
      version: ++this.#lastVersion,
      deleted: false,
    };
    this.#items.set(id, item);
    return structuredClone(item);
  }

  /** Deletes an item (keeps a tombstone); returns it, or undefined if unknown. */
  delete(id) {
    const old = this.#items.get(id);
    if (!old || old.deleted) return old && structuredClone(old);
    const tombstone = { ...old, tags: [], acl: [], version: ++this.#lastVersion, deleted: true };
    this.#items.set(id, tombstone);
    return structuredClone(tombstone);
  }

  /** Live items, by id. */
  live() {
    return [...this.#items.values()]
      .filter((item) => !item.deleted)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((item) => structuredClone(item));
  }

  /** The highest version handed out so far. */
  get lastVersion() {
    return this.#lastVersion;
  }
}
