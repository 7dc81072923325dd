#pragma once
// Area under the ROC curve of binary scores, exact (no thresholds grid): the probability that a random positive
// scores above a random negative, ties counting one half — sklearn.metrics.roc_auc_score for binary targets.
//
//   double auc = hg::metrics::roc_auc(logits.squeeze(1), bag_labels);   // any monotone score works: logits,
//                                                                         // probabilities, negative distances
#include <cstdint>
#include <span>

#include <hopgrad/core/tensor.h>

namespace hg::metrics {

/// AUC = (R₊ − n₊(n₊+1)/2) / (n₊·n₋): the Mann–Whitney U of the positives over n₊·n₋, where R₊ sums the
/// positives' ranks among all scores (rank 1 = lowest) and tied scores share their average rank.
/// Labels must be 0 or 1 with both present (AUC is undefined otherwise); scores must not be NaN.
double roc_auc(std::span<const double> scores, std::span<const int64_t> labels);
/// The same for tensors on any device: scores [N] (or [N, 1]) of a floating dtype, labels [N] as int64, bool,
/// or 0/1 floats.
double roc_auc(const Tensor& scores, const Tensor& labels);

}  // namespace hg::metrics
