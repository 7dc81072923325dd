#include <hopgrad/nn/metrics/classification.h>

#include <algorithm>
#include <cmath>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/core/error.h>
#include <hopgrad/ops/ops.h>

namespace hg::metrics {
namespace {

void check_same_length(std::span<const int64_t> predicted, std::span<const int64_t> target, const char* what) {
  HG_CHECK(predicted.size() == target.size(), "{}: {} predictions but {} targets; expected one prediction per target",
           what, predicted.size(), target.size());
  HG_CHECK(!target.empty(), "{}: got no samples; expected at least one", what);
}

void check_labels(std::span<const int64_t> labels, const char* what, const char* which) {
  for (size_t i = 0; i < labels.size(); ++i)
    HG_CHECK(labels[i] >= 0, "{}: {} label {} at index {} is negative; expected class labels ≥ 0", what, which,
             labels[i], i);
}

// Number of classes: 1 + the largest label, or `num_classes` after checking every label is below it.
int64_t class_count(std::span<const int64_t> predicted, std::span<const int64_t> target, int64_t num_classes,
                    const char* what) {
  check_labels(predicted, what, "predicted");
  check_labels(target, what, "target");
  int64_t largest = -1;
  for (int64_t v : predicted) largest = std::max(largest, v);
  for (int64_t v : target) largest = std::max(largest, v);
  if (num_classes < 0) return largest + 1;
  HG_CHECK(largest < num_classes, "{}: label {} is out of range for num_classes = {}; expected labels in [0, {})",
           what, largest, num_classes, num_classes);
  return num_classes;
}

// cm[t·C + p] as a flat host vector. C is bounded so that C² cannot overflow (a huge num_classes made the
// product wrap, and the counts were written past a too-small vector).
std::vector<int64_t> count_matrix(std::span<const int64_t> predicted, std::span<const int64_t> target,
                                  int64_t classes) {
  constexpr int64_t kMaxClasses = 1 << 16;
  HG_CHECK(classes <= kMaxClasses,
           "confusion matrix: {} classes would need a {} × {} matrix; at most {} classes are supported", classes,
           classes, classes, kMaxClasses);
  std::vector<int64_t> cm(static_cast<size_t>(classes * classes), 0);
  for (size_t i = 0; i < target.size(); ++i) ++cm[static_cast<size_t>(target[i] * classes + predicted[i])];
  return cm;
}

// F1 of class c from the confusion matrix: 2·TP / (2·TP + FP + FN), 0 when the denominator is 0.
double class_f1(const std::vector<int64_t>& cm, int64_t classes, int64_t c) {
  int64_t tp = cm[static_cast<size_t>(c * classes + c)], fp = 0, fn = 0;
  for (int64_t k = 0; k < classes; ++k) {
    if (k == c) continue;
    fp += cm[static_cast<size_t>(k * classes + c)];
    fn += cm[static_cast<size_t>(c * classes + k)];
  }
  int64_t denominator = 2 * tp + fp + fn;
  return denominator == 0 ? 0.0 : 2.0 * static_cast<double>(tp) / static_cast<double>(denominator);
}

}  // namespace

std::vector<int64_t> predicted_labels(const Tensor& predictions, const char* what) {
  HG_CHECK(predictions.defined(), "{}: predictions are an undefined tensor", what);
  const DType dtype = predictions.dtype();
  if (predictions.dim() == 2 && hg::is_floating(dtype)) {
    HG_CHECK(predictions.size(1) > 0, "{}: logits of shape {} have no classes; expected [N, C] with C ≥ 2", what,
             predictions.sizes());
    // One column is one binary score per sample (binary_cross_entropy_with_logits), not a one-class argmax.
    HG_CHECK(predictions.size(1) > 1,
             "{}: scores of shape {} hold one binary score per sample; threshold them first (e.g. `scores > 0` for "
             "logits), or pass logits [N, C] with C ≥ 2",
             what, predictions.sizes());
    if (predictions.size(0) == 0) return {};
    NoGradGuard no_grad;
    return hg::argmax(predictions.detach(), 1).to_vector<int64_t>();  // on the device: only N labels cross
  }
  HG_CHECK(predictions.dim() == 1 && (dtype == kInt64 || dtype == kBool),
           "{}: predictions of dtype {} and shape {}; expected logits/scores [N, C] (float32/float64) or labels [N] "
           "(int64/bool){}",
           what, dtype, predictions.sizes(),
           predictions.dim() == 1 && hg::is_floating(dtype) ? " — threshold scores first, e.g. `scores > 0` for logits"
                                                        : "");
  std::vector<int64_t> labels = predictions.to_vector<int64_t>();
  check_labels(labels, what, "predicted");
  return labels;
}

std::vector<int64_t> target_labels(const Tensor& targets, const char* what) {
  HG_CHECK(targets.defined(), "{}: targets are an undefined tensor", what);
  HG_CHECK(targets.dim() == 1, "{}: targets of shape {}; expected labels [N]", what, targets.sizes());
  if (!hg::is_floating(targets.dtype())) {
    std::vector<int64_t> labels = targets.to_vector<int64_t>();
    check_labels(labels, what, "target");
    return labels;
  }
  std::vector<double> values = targets.to_vector<double>();
  std::vector<int64_t> labels(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    HG_CHECK(values[i] >= 0 && values[i] == std::floor(values[i]) && values[i] < 9.0e15,
             "{}: target {} at index {} of a {} tensor is not a class label; expected whole numbers ≥ 0", what,
             values[i], i, targets.dtype());
    labels[i] = static_cast<int64_t>(values[i]);
  }
  return labels;
}

double accuracy(std::span<const int64_t> predicted, std::span<const int64_t> target) {
  check_same_length(predicted, target, "accuracy");
  size_t correct = 0;
  for (size_t i = 0; i < target.size(); ++i) correct += predicted[i] == target[i];
  return static_cast<double>(correct) / static_cast<double>(target.size());
}

double accuracy(const Tensor& predictions, const Tensor& targets) {
  return accuracy(predicted_labels(predictions, "accuracy"), target_labels(targets, "accuracy"));
}

Tensor confusion_matrix(std::span<const int64_t> predicted, std::span<const int64_t> target, int64_t num_classes) {
  check_same_length(predicted, target, "confusion_matrix");
  int64_t classes = class_count(predicted, target, num_classes, "confusion_matrix");
  return from_vector(count_matrix(predicted, target, classes), {classes, classes}, kInt64);
}

Tensor confusion_matrix(const Tensor& predictions, const Tensor& targets, int64_t num_classes) {
  return confusion_matrix(predicted_labels(predictions, "confusion_matrix"),
                          target_labels(targets, "confusion_matrix"), num_classes);
}

double balanced_accuracy(std::span<const int64_t> predicted, std::span<const int64_t> target) {
  check_same_length(predicted, target, "balanced_accuracy");
  int64_t classes = class_count(predicted, target, -1, "balanced_accuracy");
  std::vector<int64_t> cm = count_matrix(predicted, target, classes);
  double recall_sum = 0;
  int64_t present = 0;
  for (int64_t c = 0; c < classes; ++c) {
    int64_t support = 0;
    for (int64_t p = 0; p < classes; ++p) support += cm[static_cast<size_t>(c * classes + p)];
    if (support == 0) continue;
    recall_sum += static_cast<double>(cm[static_cast<size_t>(c * classes + c)]) / static_cast<double>(support);
    ++present;
  }
  return recall_sum / static_cast<double>(present);  // present ≥ 1: there is at least one target
}

double balanced_accuracy(const Tensor& predictions, const Tensor& targets) {
  return balanced_accuracy(predicted_labels(predictions, "balanced_accuracy"),
                           target_labels(targets, "balanced_accuracy"));
}

double f1_score(std::span<const int64_t> predicted, std::span<const int64_t> target, Average average,
                int64_t positive_label) {
  check_same_length(predicted, target, "f1_score");
  int64_t classes = class_count(predicted, target, -1, "f1_score");
  if (average == Average::Binary) {
    HG_CHECK(classes <= 2,
             "f1_score: binary F1 got label {}; expected labels 0 and 1 (use Average::Macro for {} classes)",
             classes - 1, classes);
    HG_CHECK(positive_label == 0 || positive_label == 1,
             "f1_score: positive_label {} is not a binary label; expected 0 or 1", positive_label);
    classes = 2;
    return class_f1(count_matrix(predicted, target, classes), classes, positive_label);
  }
  std::vector<int64_t> cm = count_matrix(predicted, target, classes);
  // A class counts when it occurs in predicted ∪ target: its row or its column is non-zero.
  double f1_sum = 0;
  int64_t present = 0;
  for (int64_t c = 0; c < classes; ++c) {
    int64_t occurrences = 0;
    for (int64_t k = 0; k < classes; ++k)
      occurrences += cm[static_cast<size_t>(c * classes + k)] + cm[static_cast<size_t>(k * classes + c)];
    if (occurrences == 0) continue;
    f1_sum += class_f1(cm, classes, c);
    ++present;
  }
  return f1_sum / static_cast<double>(present);
}

double f1_score(const Tensor& predictions, const Tensor& targets, Average average, int64_t positive_label) {
  return f1_score(predicted_labels(predictions, "f1_score"), target_labels(targets, "f1_score"), average,
                  positive_label);
}

}  // namespace hg::metrics
