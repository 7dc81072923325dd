// MIL benchmark datasets from MATLAB files (see mil.h).
#include <hopgrad/nn/data/mil.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include <hopgrad/ops/ops.h>

namespace hg::data {

namespace {

// Checks that `name` is a numeric or sparse 1×N or N×1 vector; returns N.
int64_t vector_length(const MatFile& mat, std::string_view name) {
  const MatArray& a = mat.at(name);
  HG_CHECK(a.dims.size() == 2 && (a.rows() == 1 || a.cols() == 1) && (a.is_numeric() || a.is_sparse()),
           "{}: variable '{}' is a {} array of dims {}, expected a numeric 1×N or N×1 vector", mat.source, name,
           mat_class_name(a.mat_class), fmt::join(a.dims, "×"));
  return a.numel();
}

// A 1 × N or N × 1 numeric or sparse variable as N doubles (implicit sparse zeros included). Its length must have
// been checked against something the file stores (a sparse vector's N is only a header field).
std::vector<double> vector_values(const MatFile& mat, std::string_view name) {
  const MatArray& a = mat.at(name);
  if (!a.is_sparse()) return a.values;
  std::vector<double> out(a.numel(), 0.0);
  // Column-major position of (row, col) is row + col·rows; for a vector it is the element index.
  for (int64_t c = 0; c < a.cols(); ++c) {
    for (int64_t k = a.column_starts[c]; k < a.column_starts[c + 1]; ++k) {
      out[a.row_indices[k] + c * a.rows()] = a.values[k];
    }
  }
  return out;
}

// Features must be finite in the dtype they are returned in: a NaN, an infinity, or a double beyond float32's
// range (which would become an infinity) poisons every bag it is in. Checks the stored values only, before
// densifying.
void check_features_finite(const MatFile& mat, const MatArray& features, DType dtype) {
  const double largest = dtype == kFloat32 ? static_cast<double>(std::numeric_limits<float>::max())
                                           : std::numeric_limits<double>::max();
  auto check = [&](double v, int64_t row, int64_t col) {
    HG_CHECK(std::isfinite(v) && std::abs(v) <= largest,
             "{}: features[{}, {}] (instance {}, feature {}) is {}, expected a finite number{}", mat.source, row,
             col, row, col, v, std::isfinite(v) ? fmt::format(" within {}'s range", dtype) : "");
  };
  const int64_t rows = features.rows(), cols = features.cols();
  if (features.is_sparse()) {
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t k = features.column_starts[c]; k < features.column_starts[c + 1]; ++k) {
        check(features.values[k], features.row_indices[k], c);
      }
    }
  } else {
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t r = 0; r < rows; ++r) check(features.values[c * rows + r], r, c);
    }
  }
}

}  // namespace

int64_t MilDataset::num_positive_bags() const {
  const std::vector<int64_t> labels = bag_labels.to_vector<int64_t>();
  return std::accumulate(labels.begin(), labels.end(), int64_t{0});
}

int64_t MilDataset::bag_size(int64_t b) const {
  HG_CHECK(b >= 0 && b < num_bags(), "MilDataset::bag_size: bag {} is out of range for {} bags", b, num_bags());
  return bag_offsets[b + 1] - bag_offsets[b];
}

Tensor MilDataset::bag(int64_t b) const {
  HG_CHECK(b >= 0 && b < num_bags(), "MilDataset::bag: bag {} is out of range for {} bags", b, num_bags());
  return features.narrow(0, bag_offsets[b], bag_offsets[b + 1] - bag_offsets[b]);
}

MilDataset mil_from_mat(const MatFile& mat, const MilOptions& options) {
  HG_CHECK(is_floating(options.dtype_), "mil_from_mat: dtype must be float32 or float64, got {}", options.dtype_);
  // Every bag id is ≥ 1, so a sparse bag_ids must store every entry: then the instance count N is backed by the
  // file's bytes, and no vector is allocated from a header field alone.
  const int64_t n = vector_length(mat, "bag_ids");
  const MatArray& id_array = mat.at("bag_ids");
  HG_CHECK(!id_array.is_sparse() || id_array.nnz() == n,
           "{}: 'bag_ids' is a sparse {} vector storing {} of its {} entries; every instance needs a bag id ≥ 1, so "
           "every entry must be stored",
           mat.source, fmt::join(id_array.dims, "×"), id_array.nnz(), n);
  const int64_t num_labels = vector_length(mat, "labels");
  HG_CHECK(num_labels == n, "{}: 'bag_ids' has {} instances but 'labels' has {}", mat.source, n, num_labels);
  const std::vector<double> ids = vector_values(mat, "bag_ids");
  const std::vector<double> labels = vector_values(mat, "labels");
  const MatArray& features = mat.at("features");
  HG_CHECK(features.dims.size() == 2 && (features.is_numeric() || features.is_sparse()),
           "{}: 'features' is a {} array of dims {}, expected a 2-D numeric or sparse N×D matrix", mat.source,
           mat_class_name(features.mat_class), fmt::join(features.dims, "×"));
  HG_CHECK(features.rows() == n, "{}: 'features' has {} rows (instances) but 'bag_ids' has {} instances",
           mat.source, features.rows(), n);

  MilDataset out;
  out.name = mat.source;
  std::vector<int64_t> instance_labels(n), bag_labels, bag_ids;
  std::unordered_map<int64_t, int64_t> first_row;  // bag id → first instance, to find non-adjacent bags
  for (int64_t i = 0; i < n; ++i) {
    const double id = ids[i];
    HG_CHECK(std::isfinite(id) && id >= 1 && id == std::floor(id) && id < 9.0e15,
             "{}: bag_ids[{}] is {}, expected a positive integer", mat.source, i, id);
    const double label = labels[i];
    HG_CHECK(label == -1.0 || label == 0.0 || label == 1.0, "{}: labels[{}] is {}, expected -1, 0 or +1",
             mat.source, i, label);
    instance_labels[i] = label > 0 ? 1 : 0;
    const auto bag = static_cast<int64_t>(id);
    if (i == 0 || bag != bag_ids.back()) {
      const auto [it, fresh] = first_row.emplace(bag, i);
      HG_CHECK(fresh, "{}: the instances of bag {} are not adjacent (rows {} and {}, with other bags between)",
               mat.source, bag, it->second, i);
      out.bag_offsets.push_back(i);
      bag_ids.push_back(bag);
      bag_labels.push_back(0);
    }
    bag_labels.back() = std::max(bag_labels.back(), instance_labels[i]);
  }
  out.bag_offsets.push_back(n);
  const auto b = static_cast<int64_t>(bag_ids.size());
  check_features_finite(mat, features, options.dtype_);
  out.features = features.to_dense(options.dtype_);
  out.instance_labels = hg::from_vector(instance_labels, {n});
  out.bag_labels = hg::from_vector(bag_labels, {b});
  out.bag_ids = hg::from_vector(bag_ids, {b});
  return out;
}

MilDataset read_mil_mat(const std::filesystem::path& path, const MilOptions& options) {
  MilDataset d = mil_from_mat(read_mat(path), options);
  d.name = path.stem().string();
  return d;
}

MilDataset load_mil(const std::filesystem::path& dir, std::string_view name, const MilOptions& options) {
  static const std::unordered_map<std::string_view, std::string_view> files{
      {"elephant", "elephant_100x100_matlab.mat"}, {"fox", "fox_100x100_matlab.mat"},
      {"tiger", "tiger_100x100_matlab.mat"},       {"musk1", "musk1norm_matlab.mat"},
      {"musk2", "musk2norm_matlab.mat"},
  };
  const auto it = files.find(name);
  HG_CHECK(it != files.end(), "load_mil: unknown dataset '{}', expected elephant, fox, tiger, musk1 or musk2", name);
  MilDataset d = read_mil_mat(dir / it->second, options);
  d.name = name;
  return d;
}

}  // namespace hg::data
