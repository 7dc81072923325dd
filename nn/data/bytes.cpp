// Byte buffers for the dataset readers (see bytes.h).
#include <hopgrad/nn/data/bytes.h>

#include <algorithm>
#include <fstream>
#include <system_error>

#include <zlib.h>

namespace hg::data::detail {

namespace {

std::string_view file_type_name(std::filesystem::file_type type) {
  using std::filesystem::file_type;
  switch (type) {
    case file_type::directory: return "a directory";
    case file_type::fifo: return "a FIFO";
    case file_type::socket: return "a socket";
    case file_type::block: return "a block device";
    case file_type::character: return "a character device";
    default: return "not a regular file";
  }
}

}  // namespace

Bytes read_file(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  // Checked before opening: std::ifstream opens a directory and reports a size of 2^63 − 1 (a bad_alloc later),
  // and opening a FIFO blocks until something writes to it.
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  HG_CHECK(fs::exists(status), "{}: cannot open file (does it exist and is it readable?){}", path.string(),
           ec && ec != std::errc::no_such_file_or_directory ? fmt::format(": {}", ec.message()) : "");
  HG_CHECK(fs::is_regular_file(status), "{}: is not a regular file ({}), expected a data file", path.string(),
           file_type_name(status.type()));
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

Bytes read_maybe_gzipped_file(const std::filesystem::path& path) {
  Bytes bytes = read_file(path);
  if (!is_gzip(bytes)) return bytes;
  return gunzip(bytes, path.string());
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
// The output never grows past max_bytes + 1: with `prefix`, inflation stops quietly after max_bytes bytes (the
// rest of the input is not looked at); otherwise producing byte max_bytes + 1 is an error.
Bytes inflate_all(ByteSpan in, std::string_view source, uint64_t base_offset, int window_bits,
                  std::string_view format, uint64_t max_bytes, bool prefix, std::string_view limit_reason) {
  const uint64_t capacity = prefix ? max_bytes : max_bytes + 1;
  Bytes out;
  out.resize(static_cast<size_t>(std::min<uint64_t>(std::max<size_t>(in.size() * 4, 4096), capacity)));
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
    if (prefix && produced == max_bytes) {
      inflateEnd(&zs);
      break;
    }
    // zlib counts in uInt; feed at most 1 GiB at a time.
    const size_t in_left = in.size() - static_cast<size_t>(zs.next_in - in.data());
    zs.avail_in = static_cast<uInt>(std::min<size_t>(in_left, 1u << 30));
    if (produced == out.size()) out.resize(static_cast<size_t>(std::min<uint64_t>(out.size() * 2, capacity)));
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(std::min<size_t>(out.size() - produced, 1u << 30));
    const uInt avail_out_before = zs.avail_out;
    const uInt avail_in_before = zs.avail_in;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    produced += avail_out_before - zs.avail_out;
    if (produced > max_bytes) {  // only without `prefix`, whose buffer holds max_bytes
      inflateEnd(&zs);
      HG_FAIL("{}: the {} data decompresses to more than {} bytes ({}); inflation stopped there", source, format,
              max_bytes, limit_reason);
    }
    if (rc == Z_STREAM_END) {
      const size_t used = static_cast<size_t>(zs.next_in - in.data());
      if (used == in.size()) {
        inflateEnd(&zs);
        break;
      }
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
    if (rc == Z_BUF_ERROR) continue;  // output full: grow (or stop at the limit) and go on
    fail(zs.msg ? zs.msg : fmt::format("zlib error {}", rc));
  }
  out.resize(produced);
  return out;
}

}  // namespace

Bytes gunzip(ByteSpan compressed, std::string_view source, uint64_t max_bytes, std::string_view limit_reason) {
  HG_CHECK(is_gzip(compressed), "{}: byte offset 0: expected the gzip magic 1f 8b", source);
  return inflate_all(compressed, source, 0, 15 + 16, "gzip", max_bytes, /*prefix=*/false, limit_reason);
}

Bytes gunzip_prefix(ByteSpan compressed, std::string_view source, uint64_t n) {
  HG_CHECK(is_gzip(compressed), "{}: byte offset 0: expected the gzip magic 1f 8b", source);
  return inflate_all(compressed, source, 0, 15 + 16, "gzip", n, /*prefix=*/true, "");
}

Bytes inflate_zlib(ByteSpan compressed, std::string_view source, uint64_t base_offset, uint64_t max_bytes) {
  return inflate_all(compressed, source, base_offset, 15, "zlib", max_bytes, /*prefix=*/false,
                     "hopgrad's limit for compressed input");
}

}  // namespace hg::data::detail
