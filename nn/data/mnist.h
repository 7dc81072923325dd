#pragma once
// MNIST (and Fashion-MNIST) in LeCun's idx format, gzip-compressed or raw.
//
//   auto test = hg::data::load_mnist(dir, /*train=*/false,
//                                    hg::data::MnistOptions().mean(hg::data::kMnistMean).std(hg::data::kMnistStd));
//   // test.images: float32 [10000, 1, 28, 28], (pixel/255 − mean)/std; test.labels: int64 [10000] in 0..9
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hopgrad/core/tensor.h>

namespace hg::data {

/// torchvision's usual MNIST normalisation constants (mean and std of the training pixels scaled to [0, 1]).
inline constexpr double kMnistMean = 0.1307;
inline constexpr double kMnistStd = 0.3081;

/// How pixels become floats: x = (pixel / 255 − mean) / std. The defaults give ToTensor's [0, 1].
struct MnistOptions {
  double mean_ = 0.0;
  double std_ = 1.0;
  MnistOptions& mean(double m) { mean_ = m; return *this; }
  MnistOptions& std(double s) { std_ = s; return *this; }
};

/// An idx array of unsigned bytes (type code 0x08): its dims and its row-major data.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
  std::string source;         ///< names the file in errors ("… (decompressed)" for gzip input)
  uint64_t header_bytes = 0;  ///< offset of data[0] in the (decompressed) file
};

/// Parses an idx file already in memory (raw, or gzip when it starts with 1f 8b). `source` names it in errors.
/// Checks the magic (00 00 08 ndims), the dims, and that the data fills the rest of the file exactly.
IdxArray parse_idx(std::span<const uint8_t> bytes, std::string_view source);
/// Reads an idx file from disk (raw or gzip).
IdxArray read_idx(const std::filesystem::path& path);

/// Images from an idx3 file as float32 [N, 1, rows, cols], normalised per `options`.
Tensor read_mnist_images(const std::filesystem::path& path, const MnistOptions& options = {});
/// Labels from an idx1 file as int64 [N]; every label must be in 0..9.
Tensor read_mnist_labels(const std::filesystem::path& path);
/// The same conversions for arrays already parsed (used by read_* and the fuzz target).
Tensor mnist_images(const IdxArray& idx, const MnistOptions& options = {});
Tensor mnist_labels(const IdxArray& idx);

struct MnistSplit {
  Tensor images;  ///< float32 [N, 1, rows, cols]
  Tensor labels;  ///< int64 [N]
};

/// The train (`train-*`) or test (`t10k-*`) split from `root`, which holds the idx files with or without .gz
/// (torchvision's raw/ folder layout). Checks that images and labels have the same count.
MnistSplit load_mnist(const std::filesystem::path& root, bool train, const MnistOptions& options = {});

}  // namespace hg::data
