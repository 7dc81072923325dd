// Byte buffers for the dataset readers (see bytes.h).
#include <hopgrad/nn/data/bytes.h>

#include <algorithm>
#include <fstream>

#include <zlib.h>

namespace hg::data::detail {

Bytes read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  HG_CHECK(in.is_open(), "{}: cannot open file (does it exist and is it readable?)", path.string());
  const std::streamoff size = in.tellg();
  HG_CHECK(size >= 0, "{}: cannot determine the file size", path.string());
  Bytes bytes(static_cast<size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), size);
  HG_CHECK(in.gcount() == size, "{}: read {} of {} bytes", path.string(), in.gcount(), size);
  return bytes;
}

std::string ByteCursor::where(uint64_t offset) const {
  return fmt::format("{}: byte offset {}", source_, base_ + offset);
}

void ByteCursor::require(uint64_t n, std::string_view what) const {
  HG_CHECK(n <= remaining(), "{}: truncated: {} needs {} bytes, only {} remain", where(), what, n, remaining());
}

namespace {

// Runs inflate over `in` until the input is consumed. window_bits selects the wrapper (15 = zlib, 31 = gzip).
// gzip files may hold several members back to back (gunzip concatenates them), so after each member's end
// another member may start; a zlib stream must be the whole input.
Bytes inflate_all(ByteSpan in, std::string_view source, uint64_t base_offset, int window_bits,
                  std::string_view format) {
  Bytes out;
  out.resize(std::max<size_t>(in.size() * 4, 4096));
  z_stream zs{};
  HG_CHECK(inflateInit2(&zs, window_bits) == Z_OK, "{}: cannot initialise zlib", source);
  zs.next_in = const_cast<Bytef*>(in.data());
  size_t produced = 0;
  auto fail = [&](const std::string& why) {
    const uint64_t at = base_offset + static_cast<uint64_t>(zs.next_in - in.data());
    inflateEnd(&zs);
    HG_FAIL("{}: byte offset {}: corrupt {} data: {}", source, at, format, why);
  };
  for (;;) {
    // zlib counts in uInt; feed at most 1 GiB at a time.
    const size_t in_left = in.size() - static_cast<size_t>(zs.next_in - in.data());
    zs.avail_in = static_cast<uInt>(std::min<size_t>(in_left, 1u << 30));
    if (produced == out.size()) out.resize(out.size() * 2);
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(std::min<size_t>(out.size() - produced, 1u << 30));
    const uInt avail_out_before = zs.avail_out;
    const uInt avail_in_before = zs.avail_in;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    produced += avail_out_before - zs.avail_out;
    if (rc == Z_STREAM_END) {
      const size_t used = static_cast<size_t>(zs.next_in - in.data());
      if (used == in.size()) break;
      if (window_bits != 31) {
        const uint64_t at = base_offset + used;
        inflateEnd(&zs);
        HG_FAIL("{}: byte offset {}: {} trailing bytes after the end of the {} stream", source, at,
                in.size() - used, format);
      }
      if (!is_gzip(in.subspan(used))) fail("expected another gzip member (magic 1f 8b) after the end of the last one");
      HG_CHECK(inflateReset(&zs) == Z_OK, "{}: zlib reset failed", source);
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && avail_in_before == 0 && zs.avail_out > 0) {
      const uint64_t at = base_offset + in.size();
      inflateEnd(&zs);
      HG_FAIL("{}: byte offset {}: truncated {} stream: the input ends before the end-of-stream marker", source,
              at, format);
    }
    if (rc == Z_BUF_ERROR) continue;  // output full: grow and go on
    fail(zs.msg ? zs.msg : fmt::format("zlib error {}", rc));
  }
  inflateEnd(&zs);
  out.resize(produced);
  return out;
}

}  // namespace

Bytes gunzip(ByteSpan compressed, std::string_view source) {
  HG_CHECK(is_gzip(compressed), "{}: byte offset 0: expected the gzip magic 1f 8b", source);
  return inflate_all(compressed, source, 0, 15 + 16, "gzip");
}

Bytes inflate_zlib(ByteSpan compressed, std::string_view source, uint64_t base_offset) {
  return inflate_all(compressed, source, base_offset, 15, "zlib");
}

}  // namespace hg::data::detail
