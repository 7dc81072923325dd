#pragma once
// CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin): 10000 records of 3073 bytes each, a record
// being uint8 label then 1024 R, 1024 G, 1024 B bytes (32×32 planes, row-major).
//
//   auto train = hg::data::load_cifar10(dir, /*train=*/true,
//       hg::data::Cifar10Options().mean(hg::data::kCifar10Mean).std(hg::data::kCifar10Std));
//   // train.images: float32 [50000, 3, 32, 32]; train.labels: int64 [50000] in 0..9
#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include <hopgrad/core/tensor.h>

namespace hg::data {

/// Per-channel mean and std of the CIFAR-10 training pixels scaled to [0, 1] (the values used with
/// torchvision's Normalize).
inline constexpr std::array<double, 3> kCifar10Mean{0.4914, 0.4822, 0.4465};
inline constexpr std::array<double, 3> kCifar10Std{0.2470, 0.2435, 0.2616};
/// Class names in label order (batches.meta.txt).
inline constexpr std::array<std::string_view, 10> kCifar10Classes{
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

/// How pixels become floats, per channel c: x = (pixel / 255 − mean[c]) / std[c]. Defaults give [0, 1].
struct Cifar10Options {
  std::array<double, 3> mean_{0.0, 0.0, 0.0};
  std::array<double, 3> std_{1.0, 1.0, 1.0};
  Cifar10Options& mean(std::array<double, 3> m) { mean_ = m; return *this; }
  Cifar10Options& std(std::array<double, 3> s) { std_ = s; return *this; }
};

struct Cifar10Batch {
  Tensor images;  ///< float32 [N, 3, 32, 32]
  Tensor labels;  ///< int64 [N], 0..9
};

/// Parses a batch already in memory; `source` names it in errors. The size must be a positive multiple of 3073
/// and every label byte in 0..9.
Cifar10Batch parse_cifar10_batch(std::span<const uint8_t> bytes, std::string_view source,
                                 const Cifar10Options& options = {});
/// Reads one batch file.
Cifar10Batch read_cifar10_batch(const std::filesystem::path& path, const Cifar10Options& options = {});
/// The training set (data_batch_1..5.bin, concatenated in order) or the test set (test_batch.bin), from `root`
/// or from `root`/cifar-10-batches-bin (the layout of the official archive).
Cifar10Batch load_cifar10(const std::filesystem::path& root, bool train, const Cifar10Options& options = {});

}  // namespace hg::data
