#include "bench/subscribe_response_reader.h"

#include <functional>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/support/proto_buffer_reader.h"

namespace entitysync {
namespace bench {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// Field numbers from proto/entitysync/v1/entitysync.proto.
constexpr int kResponseSubscribed = 1;
constexpr int kResponseUpdate = 2;
constexpr int kResponseStale = 3;
constexpr int kResponseError = 4;
constexpr int kResponseGoAway = 7;
constexpr int kResponseBatch = 9;
constexpr int kBatchResponses = 1;
constexpr int kKeyId = 2;
constexpr int kSubscribedKey = 2;
constexpr int kUpdateKey = 1;
constexpr int kUpdateVersion = 2;
constexpr int kUpdateRows = 3;
constexpr int kUpdateRemoved = 4;
constexpr int kRowData = 1;
constexpr int kStaleKey = 1;
constexpr int kErrorCode = 2;
constexpr int kErrorMessage = 3;
constexpr int kErrorKey = 4;

// Lengths that fit PushLimit's int; real messages are far smaller.
constexpr uint32_t kMaxLength = 1u << 30;

bool IsLengthDelimited(uint32_t tag) {
  return WireFormatLite::GetTagWireType(tag) ==
         WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
}

bool IsVarint(uint32_t tag) {
  return WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_VARINT;
}

// Reads the length-delimited field that starts at `in` with `read_fields`,
// which reads tags until the field's end.
template <typename ReadFields>
bool ReadNested(CodedInputStream* in, ReadFields read_fields) {
  uint32_t length;
  if (!in->ReadVarint32(&length) || length > kMaxLength) return false;
  const CodedInputStream::Limit limit = in->PushLimit(static_cast<int>(length));
  // The end of the input also ends the field's tags, legitimately as far as
  // the stream is concerned; only reaching the field's own end is complete.
  if (!read_fields() || !in->ConsumedEntireMessage() ||
      in->BytesUntilLimit() != 0) {
    return false;
  }
  in->PopLimit(limit);
  return true;
}

bool ReadKey(CodedInputStream* in, std::string* id) {
  return ReadNested(in, [&] {
    while (const uint32_t tag = in->ReadTag()) {
      if (WireFormatLite::GetTagFieldNumber(tag) == kKeyId &&
          IsLengthDelimited(tag)) {
        uint32_t length;
        if (!in->ReadVarint32(&length) ||
            !in->ReadString(id, static_cast<int>(length))) {
          return false;
        }
      } else if (!WireFormatLite::SkipField(in, tag)) {
        return false;
      }
    }
    return true;
  });
}

// Reads the stamp from the first row only; later rows are skipped.
bool ReadRow(CodedInputStream* in, SubscribeResponseView* out) {
  const bool first = !out->has_stamp;
  return ReadNested(in, [&] {
    while (const uint32_t tag = in->ReadTag()) {
      if (first && WireFormatLite::GetTagFieldNumber(tag) == kRowData &&
          IsLengthDelimited(tag)) {
        uint32_t length;
        if (!in->ReadVarint32(&length)) return false;
        if (length >= kRowStampBytes) {
          unsigned char stamp[kRowStampBytes];
          if (!in->ReadRaw(stamp, kRowStampBytes)) return false;
          out->stamp = DecodeRowStamp(stamp);
          out->has_stamp = true;
          length -= kRowStampBytes;
        }
        if (!in->Skip(static_cast<int>(length))) return false;
      } else if (!WireFormatLite::SkipField(in, tag)) {
        return false;
      }
    }
    return true;
  });
}

bool ReadUpdate(CodedInputStream* in, SubscribeResponseView* out) {
  return ReadNested(in, [&] {
    while (const uint32_t tag = in->ReadTag()) {
      const int field = WireFormatLite::GetTagFieldNumber(tag);
      bool ok;
      if (field == kUpdateKey && IsLengthDelimited(tag)) {
        ok = ReadKey(in, &out->id);
      } else if (field == kUpdateVersion && IsVarint(tag)) {
        ok = in->ReadVarint64(&out->version);
      } else if (field == kUpdateRows && IsLengthDelimited(tag)) {
        ok = ReadRow(in, out);
      } else if (field == kUpdateRemoved && IsVarint(tag)) {
        uint64_t removed;
        ok = in->ReadVarint64(&removed);
        out->removed = removed != 0;
      } else {
        ok = WireFormatLite::SkipField(in, tag);
      }
      if (!ok) return false;
    }
    return true;
  });
}

// Subscribed and Stale: only the key matters.
bool ReadKeyField(CodedInputStream* in, int key_field, std::string* id) {
  return ReadNested(in, [&] {
    while (const uint32_t tag = in->ReadTag()) {
      const bool ok = WireFormatLite::GetTagFieldNumber(tag) == key_field &&
                              IsLengthDelimited(tag)
                          ? ReadKey(in, id)
                          : WireFormatLite::SkipField(in, tag);
      if (!ok) return false;
    }
    return true;
  });
}

bool ReadError(CodedInputStream* in, SubscribeResponseView* out) {
  return ReadNested(in, [&] {
    while (const uint32_t tag = in->ReadTag()) {
      const int field = WireFormatLite::GetTagFieldNumber(tag);
      bool ok;
      if (field == kErrorCode && IsVarint(tag)) {
        uint32_t code;
        ok = in->ReadVarint32(&code);
        out->error_code = static_cast<int32_t>(code);
      } else if (field == kErrorMessage && IsLengthDelimited(tag)) {
        uint32_t length;
        ok = in->ReadVarint32(&length) &&
             in->ReadString(&out->error_message, static_cast<int>(length));
      } else if (field == kErrorKey && IsLengthDelimited(tag)) {
        ok = ReadKey(in, &out->id);
      } else {
        ok = WireFormatLite::SkipField(in, tag);
      }
      if (!ok) return false;
    }
    return true;
  });
}

void Reset(SubscribeResponseView* out) {
  out->kind = SubscribeResponseView::Kind::kOther;
  out->id.clear();
  out->version = 0;
  out->removed = false;
  out->has_stamp = false;
  out->stamp = RowStamp{};
  out->error_code = 0;
  out->error_message.clear();
}

// Reads one SubscribeResponse's fields up to the current limit. A batch
// (top level only, `each` set) hands each message in it to `each`.
bool ReadResponseFields(
    CodedInputStream* in, SubscribeResponseView* out, bool* batched,
    const std::function<void(const SubscribeResponseView&)>* each) {
  while (const uint32_t tag = in->ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    bool ok;
    // A oneof: a later kind replaces an earlier one, as in a full parse.
    if (!IsLengthDelimited(tag)) {
      ok = WireFormatLite::SkipField(in, tag);
    } else if (field == kResponseUpdate) {
      out->kind = SubscribeResponseView::Kind::kUpdate;
      ok = ReadUpdate(in, out);
    } else if (field == kResponseSubscribed) {
      out->kind = SubscribeResponseView::Kind::kSubscribed;
      ok = ReadKeyField(in, kSubscribedKey, &out->id);
    } else if (field == kResponseStale) {
      out->kind = SubscribeResponseView::Kind::kStale;
      ok = ReadKeyField(in, kStaleKey, &out->id);
    } else if (field == kResponseError) {
      out->kind = SubscribeResponseView::Kind::kError;
      ok = ReadError(in, out);
    } else if (field == kResponseGoAway) {
      out->kind = SubscribeResponseView::Kind::kGoAway;
      ok = WireFormatLite::SkipField(in, tag);
    } else if (field == kResponseBatch && each != nullptr) {
      *batched = true;
      ok = ReadNested(in, [&] {
        while (const uint32_t item = in->ReadTag()) {
          if (WireFormatLite::GetTagFieldNumber(item) != kBatchResponses ||
              !IsLengthDelimited(item)) {
            if (!WireFormatLite::SkipField(in, item)) return false;
            continue;
          }
          Reset(out);
          bool nested_batch = false;
          if (!ReadNested(in, [&] {
                return ReadResponseFields(in, out, &nested_batch, nullptr);
              })) {
            return false;
          }
          (*each)(*out);
        }
        return true;
      });
    } else {
      out->kind = SubscribeResponseView::Kind::kOther;
      ok = WireFormatLite::SkipField(in, tag);
    }
    if (!ok) return false;
  }
  return true;
}

bool Read(grpc::ByteBuffer* buffer, SubscribeResponseView* out, bool* batched,
          const std::function<void(const SubscribeResponseView&)>* each) {
  Reset(out);
  grpc::ProtoBufferReader reader(buffer);
  if (!reader.status().ok()) return false;
  CodedInputStream in(&reader);
  return ReadResponseFields(&in, out, batched, each) &&
         in.ConsumedEntireMessage();
}

}  // namespace

bool ReadSubscribeResponse(grpc::ByteBuffer* buffer,
                           SubscribeResponseView* out) {
  bool batched = false;
  return Read(buffer, out, &batched, nullptr);
}

bool ReadSubscribeResponses(
    grpc::ByteBuffer* buffer, SubscribeResponseView* view,
    const std::function<void(const SubscribeResponseView&)>& each) {
  bool batched = false;
  if (!Read(buffer, view, &batched, &each)) return false;
  if (!batched) each(*view);
  return true;
}

}  // namespace bench
}  // namespace entitysync
