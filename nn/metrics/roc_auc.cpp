#include <hopgrad/nn/metrics/roc_auc.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <hopgrad/core/error.h>
#include <hopgrad/nn/metrics/classification.h>

namespace hg::metrics {

double roc_auc(std::span<const double> scores, std::span<const int64_t> labels) {
  HG_CHECK(scores.size() == labels.size(), "roc_auc: {} scores but {} labels; expected one score per label",
           scores.size(), labels.size());
  int64_t positives = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    HG_CHECK(labels[i] == 0 || labels[i] == 1, "roc_auc: label {} at index {}; expected binary labels 0 or 1",
             labels[i], i);
    HG_CHECK(!std::isnan(scores[i]), "roc_auc: score at index {} is NaN; expected comparable scores", i);
    positives += labels[i];
  }
  const int64_t negatives = static_cast<int64_t>(labels.size()) - positives;
  HG_CHECK(positives > 0 && negatives > 0,
           "roc_auc: only one class present in the labels ({} positives, {} negatives); ROC-AUC is undefined "
           "without both",
           positives, negatives);

  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // R₊ with average ranks: a run of equal scores at sorted positions [begin, end) all get rank (begin+1+end)/2.
  double positive_rank_sum = 0;
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin + 1;
    while (end < order.size() && scores[order[end]] == scores[order[begin]]) ++end;
    int64_t run_positives = 0;
    for (size_t k = begin; k < end; ++k) run_positives += labels[order[k]];
    positive_rank_sum += static_cast<double>(run_positives) * 0.5 * static_cast<double>(begin + 1 + end);
    begin = end;
  }
  const double p = static_cast<double>(positives), n = static_cast<double>(negatives);
  return (positive_rank_sum - p * (p + 1) / 2) / (p * n);
}

double roc_auc(const Tensor& scores, const Tensor& labels) {
  HG_CHECK(scores.defined() && labels.defined(), "roc_auc: got an undefined tensor");
  const bool column = scores.dim() == 2 && scores.size(1) == 1;
  HG_CHECK((scores.dim() == 1 || column) && (scores.dtype() == kFloat32 || scores.dtype() == kFloat64),
           "roc_auc: scores of dtype {} and shape {}; expected float32/float64 scores [N] or [N, 1]", scores.dtype(),
           scores.sizes());
  std::vector<double> host_scores = scores.to_vector<double>();
  std::vector<int64_t> host_labels = target_labels(labels, "roc_auc");
  return roc_auc(host_scores, host_labels);
}

}  // namespace hg::metrics
