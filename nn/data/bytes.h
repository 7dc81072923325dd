#pragma once
// Byte buffers for the dataset readers: whole-file reads, gzip/zlib inflation and bounds-checked loads of
// big- and little-endian integers, each failure an hg::Error naming the source and the byte offset.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hopgrad/core/error.h>

namespace hg::data::detail {

using Bytes = std::vector<uint8_t>;
using ByteSpan = std::span<const uint8_t>;

/// The whole file; throws naming the file when it is missing, unreadable or not a regular file (a directory, a
/// FIFO or a device is refused before it is opened: reading one would misreport its size or block).
Bytes read_file(const std::filesystem::path& path);

/// True when `bytes` start with the gzip magic 1f 8b.
inline bool is_gzip(ByteSpan bytes) { return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b; }

/// The most bytes gunzip and inflate_zlib produce when the caller knows no tighter bound: 2 GiB. Deflate
/// expands up to 1032:1, so a few megabytes can claim gigabytes; past this the reader stops with an error
/// (decompress such a file with gunzip and read it uncompressed) instead of exhausting memory.
inline constexpr uint64_t kMaxInflatedBytes = uint64_t{1} << 31;

/// Inflates a gzip file (every member, as gunzip does). Corrupt or truncated streams throw naming `source`
/// and the compressed byte offset where inflation failed; a stream that inflates to more than `max_bytes`
/// throws naming `source` and the limit, having produced at most max_bytes + 1 bytes. `limit_reason` says where
/// the limit comes from, for that error ("the idx header describes 7850 bytes").
Bytes gunzip(ByteSpan compressed, std::string_view source, uint64_t max_bytes = kMaxInflatedBytes,
             std::string_view limit_reason = "hopgrad's limit for gzip input; gunzip the file to read it "
                                             "uncompressed");

/// The first `n` bytes of a gzip file's decompressed content (fewer when it is shorter), inflating no further:
/// for reading a header that says how long the rest must be.
Bytes gunzip_prefix(ByteSpan compressed, std::string_view source, uint64_t n);

/// Inflates one zlib stream (RFC 1950, as in MAT-file miCOMPRESSED elements). `base_offset` is the stream's
/// offset in `source`, so errors give file offsets. Bounded by `max_bytes` as gunzip is.
Bytes inflate_zlib(ByteSpan compressed, std::string_view source, uint64_t base_offset,
                   uint64_t max_bytes = kMaxInflatedBytes);

/// The file's bytes, decompressed when they start with the gzip magic (bounded by kMaxInflatedBytes): for
/// text formats, whose length no header gives.
Bytes read_maybe_gzipped_file(const std::filesystem::path& path);

/// Reads fixed-width integers from a byte span with bounds checks. `where()` is "source: byte offset N",
/// the prefix of every reader error.
class ByteCursor {
 public:
  ByteCursor(ByteSpan bytes, std::string source, uint64_t base_offset = 0)
      : bytes_(bytes), source_(std::move(source)), base_(base_offset) {}

  uint64_t offset() const { return pos_; }
  uint64_t file_offset() const { return base_ + pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  uint64_t size() const { return bytes_.size(); }
  bool at_end() const { return pos_ == bytes_.size(); }
  const std::string& source() const { return source_; }
  std::string where() const { return where(pos_); }
  std::string where(uint64_t offset) const;

  /// Throws "<source>: byte offset N: truncated: <what> needs K bytes, only R remain" when fewer remain.
  void require(uint64_t n, std::string_view what) const;
  ByteSpan take(uint64_t n, std::string_view what) {
    require(n, what);
    ByteSpan s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  void skip(uint64_t n, std::string_view what) { take(n, what); }
  void seek(uint64_t offset) { pos_ = offset; }

  uint32_t be32(std::string_view what) { return load<uint32_t>(what, /*big_endian=*/true); }
  uint8_t u8(std::string_view what) { return take(1, what)[0]; }
  uint16_t le16(std::string_view what) { return load<uint16_t>(what, false); }
  uint32_t le32(std::string_view what) { return load<uint32_t>(what, false); }

 private:
  template <typename T> T load(std::string_view what, bool big_endian) {
    ByteSpan s = take(sizeof(T), what);
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      const size_t byte = big_endian ? sizeof(T) - 1 - i : i;
      v |= static_cast<T>(static_cast<T>(s[i]) << (8 * byte));
    }
    return v;
  }

  ByteSpan bytes_;
  std::string source_;
  uint64_t base_ = 0;
  uint64_t pos_ = 0;
};

}  // namespace hg::data::detail
