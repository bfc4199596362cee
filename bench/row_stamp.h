// RowStamp: what the benchmark resolver writes at the start of each row so
// that the load generator can tell, per delivered update, which change it
// carries and when that change was meant to be notified. 16 bytes: version
// then intended notify time (CLOCK_REALTIME ns), both little-endian uint64;
// rows may be longer (padding). Header-only; thread-compatible.
#ifndef ENTITYSYNC_BENCH_ROW_STAMP_H_
#define ENTITYSYNC_BENCH_ROW_STAMP_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace entitysync {
namespace bench {

struct RowStamp {
  uint64_t version = 0;
  // 0: never notified (the key's initial state).
  int64_t notify_time_ns = 0;
};

inline constexpr size_t kRowStampBytes = 16;

namespace row_stamp_internal {
inline void PutLittleEndian(uint64_t v, char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * i));
}
inline uint64_t GetLittleEndian(const unsigned char* in) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | in[i];
  return v;
}
}  // namespace row_stamp_internal

// The row data: the stamp, zero-padded to `row_bytes` (at least 16).
inline std::string EncodeRow(const RowStamp& stamp, size_t row_bytes) {
  std::string row(row_bytes < kRowStampBytes ? kRowStampBytes : row_bytes,
                  '\0');
  row_stamp_internal::PutLittleEndian(stamp.version, &row[0]);
  row_stamp_internal::PutLittleEndian(
      static_cast<uint64_t>(stamp.notify_time_ns), &row[8]);
  return row;
}

// Reads the stamp from the first kRowStampBytes bytes of a row.
inline RowStamp DecodeRowStamp(const unsigned char* bytes) {
  RowStamp stamp;
  stamp.version = row_stamp_internal::GetLittleEndian(bytes);
  stamp.notify_time_ns =
      static_cast<int64_t>(row_stamp_internal::GetLittleEndian(bytes + 8));
  return stamp;
}

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_ROW_STAMP_H_
