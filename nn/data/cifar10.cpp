// CIFAR-10 binary batch reader (see cifar10.h).
#include <hopgrad/nn/data/cifar10.h>

#include <hopgrad/nn/data/bytes.h>
#include <hopgrad/ops/ops.h>

namespace hg::data {

namespace {
constexpr int64_t kSide = 32;
constexpr int64_t kPlane = kSide * kSide;
constexpr int64_t kRecord = 1 + 3 * kPlane;  // 3073
}  // namespace

Cifar10Batch parse_cifar10_batch(std::span<const uint8_t> bytes, std::string_view source,
                                 const Cifar10Options& options) {
  const auto size = static_cast<int64_t>(bytes.size());
  HG_CHECK(size > 0 && size % kRecord == 0,
           "{}: byte offset {}: a CIFAR-10 batch is a whole number of {}-byte records (label + 3×32×32 pixels), "
           "but the file has {} bytes ({} records and {} bytes left over)",
           source, size - size % kRecord, kRecord, size, size / kRecord, size % kRecord);
  for (int c = 0; c < 3; ++c) {
    HG_CHECK(options.std_[c] > 0.0, "read_cifar10_batch: std[{}] must be positive, got {}", c, options.std_[c]);
  }
  const int64_t n = size / kRecord;
  // One lookup table per channel: 256 possible values each.
  std::array<std::array<float, 256>, 3> lut;
  for (int c = 0; c < 3; ++c) {
    for (int p = 0; p < 256; ++p) lut[c][p] = static_cast<float>((p / 255.0 - options.mean_[c]) / options.std_[c]);
  }
  Cifar10Batch batch{hg::empty({n, 3, kSide, kSide}, kFloat32), hg::empty({n}, kInt64)};
  float* images = batch.images.data_ptr<float>();      // [n, 3, 32, 32]
  int64_t* labels = batch.labels.data_ptr<int64_t>();  // [n]
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t label = bytes[i * kRecord];
    HG_CHECK(label <= 9, "{}: byte offset {}: record {} has label {}, expected a class 0..9", source, i * kRecord,
             i, label);
    labels[i] = label;
  }
  // The record's pixel bytes are already in [3, 32, 32] order; only the leading label byte is skipped.
#pragma omp parallel for if (n > 1000)
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = bytes.data() + i * kRecord + 1;
    float* dst = images + i * 3 * kPlane;
    for (int c = 0; c < 3; ++c) {
      for (int64_t p = 0; p < kPlane; ++p) dst[c * kPlane + p] = lut[c][src[c * kPlane + p]];
    }
  }
  return batch;
}

Cifar10Batch read_cifar10_batch(const std::filesystem::path& path, const Cifar10Options& options) {
  const detail::Bytes bytes = detail::read_file(path);
  return parse_cifar10_batch(bytes, path.string(), options);
}

Cifar10Batch load_cifar10(const std::filesystem::path& root, bool train, const Cifar10Options& options) {
  std::filesystem::path dir = root;
  if (!std::filesystem::exists(dir / "test_batch.bin") && std::filesystem::exists(root / "cifar-10-batches-bin")) {
    dir = root / "cifar-10-batches-bin";
  }
  if (!train) return read_cifar10_batch(dir / "test_batch.bin", options);
  std::vector<Tensor> images, labels;
  for (int k = 1; k <= 5; ++k) {
    Cifar10Batch b = read_cifar10_batch(dir / fmt::format("data_batch_{}.bin", k), options);
    images.push_back(b.images);
    labels.push_back(b.labels);
  }
  return {hg::cat(images, 0), hg::cat(labels, 0)};
}

}  // namespace hg::data
