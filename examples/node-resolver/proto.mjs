// Loads entitysync's public API (proto/entitysync/v1/*.proto) at run time
// with @grpc/proto-loader, so nothing is generated or checked in.
//
// The .proto files are read from the repository's proto/ directory, or from
// $ENTITYSYNC_PROTO_DIR when this example is copied elsewhere (point it at a
// copy of entitysync's proto/ directory).

import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PROTO_DIR = process.env.ENTITYSYNC_PROTO_DIR ||
  path.resolve(HERE, '..', '..', 'proto');

/** The `entitysync.v1` package: Resolver, Notifier, and the message types. */
export function loadEntitySyncV1() {
  const definition = protoLoader.loadSync(
    ['entitysync/v1/resolver.proto', 'entitysync/v1/entitysync.proto'],
    {
      includeDirs: [PROTO_DIR],
      keepCase: true, // field names as in the .proto: content_type, not contentType
      longs: Number, // versions are uint64; ours stay far below 2^53
      enums: String, // reason: 'SUBSCRIBE' | 'CHANGE' | 'REAUTHORIZE'
      defaults: true, // credentials is '' rather than undefined when unset
    },
  );
  return grpc.loadPackageDefinition(definition).entitysync.v1;
}
