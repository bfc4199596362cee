// ReadSubscribeResponse: extracts what the load generator needs from one
// serialized SubscribeResponse straight from the received grpc::ByteBuffer,
// without building the message: the kind, the key id, the update's version
// and the RowStamp at the start of its first row. A full parse allocates
// the key, every row and the message itself per delivery; this reads the
// wire format in place (across slices) and allocates nothing once `out`'s
// strings have grown.
//
// Thread-compatible: one SubscribeResponseView per thread or per stream.
#ifndef ENTITYSYNC_BENCH_SUBSCRIBE_RESPONSE_READER_H_
#define ENTITYSYNC_BENCH_SUBSCRIBE_RESPONSE_READER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "bench/row_stamp.h"
#include "grpcpp/support/byte_buffer.h"

namespace entitysync {
namespace bench {

struct SubscribeResponseView {
  enum class Kind {
    kOther,  // unsubscribed, passthrough_reply, or no kind set
    kSubscribed,
    kUpdate,
    kStale,
    kError,
    kGoAway,
  };
  Kind kind = Kind::kOther;
  // The key's id (subscribed, update, stale; error when it names a key).
  std::string id;
  // update: the Update's version and removed flag.
  uint64_t version = 0;
  bool removed = false;
  // update: whether the first row is long enough to hold a stamp, and it.
  bool has_stamp = false;
  RowStamp stamp;
  // error
  int32_t error_code = 0;
  std::string error_message;
};

// Fills `out` from `buffer`. False when the bytes are not a well-formed
// SubscribeResponse (`out` is then unspecified).
// A batch reads as kOther here; see ReadSubscribeResponses.
bool ReadSubscribeResponse(grpc::ByteBuffer* buffer,
                           SubscribeResponseView* out);

// Hands each SubscribeResponse that `buffer` carries to `each`, in order:
// the one it is, or every message of a SubscribeResponse.batch, read into
// `view`. False when the bytes are malformed (after handing on those read
// before the fault).
bool ReadSubscribeResponses(
    grpc::ByteBuffer* buffer, SubscribeResponseView* view,
    const std::function<void(const SubscribeResponseView&)>& each);

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_SUBSCRIBE_RESPONSE_READER_H_
