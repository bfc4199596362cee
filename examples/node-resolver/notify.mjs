#!/usr/bin/env node
// Telling entitysync that items changed: what `bridge.NotifyAllOfChange(key)`
// was in entity-sync. Call it after the change is committed; entitysync then
// asks the resolver for the new rows (once per replica with subscribers).
//
//   import { Notifier } from './notify.mjs';
//   const notifier = new Notifier('127.0.0.1:7071');   // the internal port
//   await notifier.notify([{ entity: 'items', id: '100' }]);
//
// or from a shell:
//
//   node examples/node-resolver/notify.mjs [--target=127.0.0.1:7071] items/100 items/101
//
// (the same as `entitysync notify items/100`, one key per call there).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import grpc from '@grpc/grpc-js';

import { loadEntitySyncV1 } from './proto.mjs';

export class Notifier {
  constructor(target = '127.0.0.1:7071') {
    const v1 = loadEntitySyncV1();
    this.client = new v1.Notifier(target, grpc.credentials.createInsecure());
  }

  /**
   * Announces changed keys in one batch. Each key may carry a `version`
   * (optional: the resolver's version is preferred anyway). Resolves with
   * the number of accepted changes; rejects with the gRPC error (e.g.
   * INVALID_ARGUMENT naming a bad key, UNAVAILABLE when the bus is down).
   */
  notify(keys, { timeoutMs = 5000 } = {}) {
    const changes = keys.map(({ entity, id, version }) =>
      (version === undefined ? { key: { entity, id } } : { key: { entity, id }, version }));
    return new Promise((resolve, reject) => {
      this.client.Notify({ changes }, { deadline: Date.now() + timeoutMs }, (err, response) => {
        if (err) reject(err);
        else resolve(response.accepted);
      });
    });
  }

  close() {
    this.client.close();
  }
}

async function main() {
  const { values, positionals } = parseArgs({
    options: { target: { type: 'string', default: '127.0.0.1:7071' } },
    allowPositionals: true,
  });
  const keys = positionals.map((arg) => {
    const slash = arg.indexOf('/');
    if (slash <= 0 || slash === arg.length - 1) throw new Error(`bad key "${arg}": want ENTITY/ID`);
    return { entity: arg.slice(0, slash), id: arg.slice(slash + 1) };
  });
  if (keys.length === 0) throw new Error('usage: notify.mjs [--target=HOST:PORT] ENTITY/ID...');
  const notifier = new Notifier(values.target);
  try {
    console.log(`accepted ${await notifier.notify(keys)}`);
  } finally {
    notifier.close();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(`notify: ${err.details ?? err.message}`);
    process.exit(1);
  });
}
