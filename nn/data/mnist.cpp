// MNIST idx reader (see mnist.h). Layout: int32 BE magic 00 00 08 <ndims>, ndims int32 BE sizes, then the
// row-major uint8 data; nothing may follow it.
#include <hopgrad/nn/data/mnist.h>

#include <array>

#include <hopgrad/nn/data/bytes.h>
#include <hopgrad/ops/ops.h>

namespace hg::data {

namespace {

constexpr uint8_t kIdxUnsignedByte = 0x08;
// magic + at most 255 dimension sizes
constexpr uint64_t kMaxIdxHeaderBytes = 4 + 4 * 255;

// Reads the magic and the dimension sizes at the cursor into out.dims; returns the data bytes they describe.
uint64_t read_idx_header(detail::ByteCursor& in, IdxArray& out) {
  in.require(4, "the idx magic number");
  const uint32_t magic = in.be32("the idx magic number");
  const uint32_t type = (magic >> 8) & 0xff;
  const uint32_t ndims = magic & 0xff;
  HG_CHECK((magic >> 16) == 0 && type == kIdxUnsignedByte && ndims >= 1,
           "{}: bad idx magic 0x{:08x}: expected 00 00 08 <ndims ≥ 1> (unsigned-byte data, e.g. 0x00000803 for "
           "images, 0x00000801 for labels)",
           in.where(0), magic);
  uint64_t numel = 1;
  for (uint32_t d = 0; d < ndims; ++d) {
    const uint64_t at = in.offset();
    const uint32_t size = in.be32("an idx dimension size");
    HG_CHECK(size <= static_cast<uint32_t>(INT32_MAX), "{}: idx dimension {} is {}, expected a non-negative int32",
             in.where(at), d, size);
    out.dims.push_back(size);
    numel *= size;
    HG_CHECK(numel <= (uint64_t{1} << 40), "{}: idx dimensions {} describe more than 2^40 bytes", in.where(at),
             fmt::join(out.dims, "×"));
  }
  return numel;
}

// Inflates a gzip idx file only as far as its header says it reaches: the header first (it is at most 1024
// bytes), then header + data bytes and not one more, so a few kilobytes of gzip cannot make gigabytes before the
// size check (a "gzip bomb"). A stream that decompresses to less is left for parse_idx to report.
detail::Bytes inflate_idx(std::span<const uint8_t> bytes, std::string_view source, const std::string& decompressed) {
  const detail::Bytes head = detail::gunzip_prefix(bytes, source, kMaxIdxHeaderBytes);
  detail::ByteCursor in(head, decompressed);
  IdxArray header;
  const uint64_t numel = read_idx_header(in, header);
  const uint64_t total = in.offset() + numel;
  if (total > detail::kMaxInflatedBytes) return detail::gunzip(bytes, source);  // fails at the default limit
  return detail::gunzip(bytes, source, total,
                        fmt::format("its idx header describes {} bytes: {} of header and {} of data for dims {}", total,
                                    in.offset(), numel, fmt::join(header.dims, "×")));
}

}  // namespace

IdxArray parse_idx(std::span<const uint8_t> bytes, std::string_view source) {
  // After decompression, offsets refer to the decompressed stream, and errors say so.
  const bool gzipped = detail::is_gzip(bytes);
  IdxArray out;
  out.source = gzipped ? fmt::format("{} (decompressed)", source) : std::string(source);
  detail::Bytes inflated;
  if (gzipped) {
    inflated = inflate_idx(bytes, source, out.source);
    bytes = inflated;
  }
  detail::ByteCursor in(bytes, out.source);
  const uint64_t numel = read_idx_header(in, out);
  HG_CHECK(in.remaining() == numel,
           "{}: idx dims {} need {} data bytes, but the file has {} after the header (expected total size {})",
           in.where(), fmt::join(out.dims, "×"), numel, in.remaining(), in.offset() + numel);
  out.header_bytes = in.offset();
  const auto data = in.take(numel, "idx data");
  out.data.assign(data.begin(), data.end());
  return out;
}

IdxArray read_idx(const std::filesystem::path& path) {
  const detail::Bytes bytes = detail::read_file(path);
  return parse_idx(bytes, path.string());
}

Tensor mnist_images(const IdxArray& idx, const MnistOptions& options) {
  const std::string& source = idx.source;
  HG_CHECK(idx.dims.size() == 3, "{}: MNIST images: expected an idx3 array [N, rows, cols], got {} dims", source,
           idx.dims.size());
  HG_CHECK(options.std_ > 0.0, "read_mnist_images: std must be positive, got {}", options.std_);
  const int64_t n = idx.dims[0], rows = idx.dims[1], cols = idx.dims[2];
  // One table lookup per pixel: 256 possible values.
  std::array<float, 256> lut;
  for (int p = 0; p < 256; ++p) lut[p] = static_cast<float>((p / 255.0 - options.mean_) / options.std_);
  Tensor images = hg::empty({n, 1, rows, cols}, kFloat32);
  float* dst = images.data_ptr<float>();
  const uint8_t* src = idx.data.data();
  const int64_t numel = n * rows * cols;
#pragma omp parallel for simd if (numel > (1 << 20))
  for (int64_t i = 0; i < numel; ++i) dst[i] = lut[src[i]];
  return images;
}

Tensor mnist_labels(const IdxArray& idx) {
  const std::string& source = idx.source;
  HG_CHECK(idx.dims.size() == 1, "{}: MNIST labels: expected an idx1 array [N], got {} dims", source,
           idx.dims.size());
  const int64_t n = idx.dims[0];
  Tensor labels = hg::empty({n}, kInt64);
  int64_t* dst = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    HG_CHECK(idx.data[i] <= 9, "{}: byte offset {}: label {} is {}, expected a digit class 0..9", source,
             idx.header_bytes + i, i, idx.data[i]);
    dst[i] = idx.data[i];
  }
  return labels;
}

Tensor read_mnist_images(const std::filesystem::path& path, const MnistOptions& options) {
  return mnist_images(read_idx(path), options);
}

Tensor read_mnist_labels(const std::filesystem::path& path) { return mnist_labels(read_idx(path)); }

MnistSplit load_mnist(const std::filesystem::path& root, bool train, const MnistOptions& options) {
  const std::string prefix = train ? "train" : "t10k";
  auto find = [&](const std::string& stem) {
    for (const auto& candidate : {root / (stem + ".gz"), root / stem}) {
      if (std::filesystem::exists(candidate)) return candidate;
    }
    HG_FAIL("load_mnist: neither {0}.gz nor {0} exists in {1}", stem, root.string());
  };
  const auto image_path = find(prefix + "-images-idx3-ubyte");
  const auto label_path = find(prefix + "-labels-idx1-ubyte");
  MnistSplit split{read_mnist_images(image_path, options), read_mnist_labels(label_path)};
  HG_CHECK(split.images.size(0) == split.labels.size(0), "load_mnist: {} has {} images but {} has {} labels",
           image_path.string(), split.images.size(0), label_path.string(), split.labels.size(0));
  return split;
}

}  // namespace hg::data
