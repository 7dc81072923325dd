#pragma once
// Classification metrics from predicted and true class labels: accuracy, confusion matrix, balanced accuracy
// and F1 (binary or macro-averaged), with sklearn's definitions. ROC-AUC, which needs scores, is in roc_auc.h.
//
//   double acc = hg::metrics::accuracy(logits, labels);           // logits [N, C]: the prediction is the argmax
//   hg::Tensor cm = hg::metrics::confusion_matrix(logits, labels);  // int64 [C, C]; cm[t][p] = #(true t, predicted p)
//   double f1 = hg::metrics::f1_score(scores > 0, bag_labels);      // binary F1 of class 1
//   double macro = hg::metrics::f1_score(predicted, labels, hg::metrics::Average::Macro);
//
// Tensor arguments may live on any device (they are copied to the host). Predictions are either logits or
// scores [N, C ≥ 2] of a floating dtype (the predicted class is the argmax over C, first index on ties), or
// labels [N] of dtype int64 or bool. Targets are labels [N]: int64, bool, or a floating dtype holding whole
// numbers (the 0/1 targets of binary_cross_entropy_with_logits). A floating [N] or [N, 1] prediction is refused,
// because it is unclear whether it holds logits or probabilities: threshold it yourself (`scores > 0` for
// logits).
#include <cstdint>
#include <span>
#include <vector>

#include <hopgrad/core/tensor.h>

namespace hg::metrics {

/// Class labels (≥ 0) on the host from a prediction tensor: argmax over dim 1 of [N, C] logits/scores, or
/// the values of int64/bool [N] labels. `what` names the calling metric in errors.
std::vector<int64_t> predicted_labels(const Tensor& predictions, const char* what = "predicted_labels");
/// Class labels (≥ 0) on the host from a target tensor [N] (int64, bool, or whole numbers in a float dtype).
std::vector<int64_t> target_labels(const Tensor& targets, const char* what = "target_labels");

/// accuracy = #(predicted = target) / N. Refuses N = 0 (PyTorch's mean of nothing is NaN; a metric of
/// nothing is a bug upstream).
double accuracy(std::span<const int64_t> predicted, std::span<const int64_t> target);
double accuracy(const Tensor& predictions, const Tensor& targets);

/// cm[t][p] = number of samples of true class t predicted as p, as int64 [C, C] on the CPU (sklearn's and
/// torchmetrics' orientation: rows are true classes). num_classes < 0 takes 1 + the largest label seen;
/// otherwise every label must be below num_classes.
Tensor confusion_matrix(std::span<const int64_t> predicted, std::span<const int64_t> target,
                        int64_t num_classes = -1);
Tensor confusion_matrix(const Tensor& predictions, const Tensor& targets, int64_t num_classes = -1);

/// balanced accuracy = mean over the classes present in the target of recall_c = cm[c][c] / Σ_p cm[c][p]
/// (sklearn.metrics.balanced_accuracy_score; classes only ever predicted do not count).
double balanced_accuracy(std::span<const int64_t> predicted, std::span<const int64_t> target);
double balanced_accuracy(const Tensor& predictions, const Tensor& targets);

/// How F1 is averaged over classes.
enum class Average {
  Binary,  ///< F1 of class `positive_label` only; labels must be 0 or 1
  Macro,   ///< unweighted mean of the per-class F1 over the classes in predicted ∪ target
};

/// F1 = 2·TP / (2·TP + FP + FN) per class, 0 when the class has no true and no predicted samples
/// (sklearn's f1_score with zero_division=0).
double f1_score(std::span<const int64_t> predicted, std::span<const int64_t> target,
                Average average = Average::Binary, int64_t positive_label = 1);
double f1_score(const Tensor& predictions, const Tensor& targets, Average average = Average::Binary,
                int64_t positive_label = 1);

}  // namespace hg::metrics
