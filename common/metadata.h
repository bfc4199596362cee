// Names of the gRPC metadata entitysync reads on a Subscribe call, shared by
// the server and the clients.
#ifndef ENTITYSYNC_COMMON_METADATA_H_
#define ENTITYSYNC_COMMON_METADATA_H_

namespace entitysync {

// "1": the client takes SubscribeResponse.batch (entitysync.proto, Batch).
inline constexpr char kBatchMetadata[] = "entitysync-batch";

}  // namespace entitysync

#endif  // ENTITYSYNC_COMMON_METADATA_H_
