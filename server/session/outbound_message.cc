#include "server/session/outbound_message.h"

#include <utility>
#include <vector>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/support/slice.h"

namespace entitysync {

OutboundMessage EncodeOutbound(const v1::SubscribeResponse& response,
                               OutboundMessage::Kind kind,
                               std::string key_string, uint64_t version) {
  const size_t size = response.ByteSizeLong();
  grpc::Slice slice(size);
  response.SerializeWithCachedSizesToArray(const_cast<uint8_t*>(slice.begin()));
  OutboundMessage msg;
  msg.kind = kind;
  msg.key_string = std::move(key_string);
  msg.version = version;
  msg.bytes = grpc::ByteBuffer(&slice, 1);
  msg.size = size;
  msg.forms = std::make_shared<SharedForms>();
  return msg;
}

grpc::ByteBuffer EncodeBatch(const OutboundBatch& messages) {
  using google::protobuf::internal::WireFormatLite;
  using google::protobuf::io::CodedOutputStream;
  // Field numbers from proto/entitysync/v1/entitysync.proto.
  constexpr int kResponseBatch = 9;
  constexpr int kBatchResponses = 1;
  const uint32_t batch_tag = WireFormatLite::MakeTag(
      kResponseBatch, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  const uint32_t item_tag = WireFormatLite::MakeTag(
      kBatchResponses, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  size_t body = 0;
  size_t headers = 0;
  for (const OutboundMessage& m : messages) {
    const size_t header = CodedOutputStream::VarintSize32(item_tag) +
                          CodedOutputStream::VarintSize64(m.size);
    body += header + m.size;
    headers += header;
  }
  const size_t outer = CodedOutputStream::VarintSize32(batch_tag) +
                       CodedOutputStream::VarintSize64(body);
  // All headers in one allocation; each message's header is a piece of it.
  grpc::Slice header_bytes(outer + headers);
  uint8_t* const start = const_cast<uint8_t*>(header_bytes.begin());
  uint8_t* p = start;
  p = CodedOutputStream::WriteVarint32ToArray(batch_tag, p);
  p = CodedOutputStream::WriteVarint64ToArray(body, p);
  std::vector<grpc::Slice> slices;
  slices.reserve(messages.size() * 2);
  std::vector<grpc::Slice> payload;
  // The first piece also holds the batch's own header.
  size_t from = 0;
  for (const OutboundMessage& m : messages) {
    p = CodedOutputStream::WriteVarint32ToArray(item_tag, p);
    p = CodedOutputStream::WriteVarint64ToArray(m.size, p);
    const size_t to = static_cast<size_t>(p - start);
    slices.push_back(header_bytes.sub(from, to));
    from = to;
    payload.clear();
    // Dump only fails on a buffer gRPC could not read, which ours never is.
    (void)m.bytes.Dump(&payload);
    for (grpc::Slice& s : payload) slices.push_back(std::move(s));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace entitysync
