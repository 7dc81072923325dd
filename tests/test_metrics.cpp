// hg::metrics against hand computations (each worked out in the comment next to it) and, for ROC-AUC, against
// the definition itself: the fraction of (positive, negative) pairs ranked correctly, ties counting one half.
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "testing.h"

using hg::Tensor;
namespace metrics = hg::metrics;

namespace {

// AUC straight from its definition, O(n₊·n₋): P(score₊ > score₋) + ½ P(score₊ = score₋).
double pairwise_auc(const std::vector<double>& scores, const std::vector<int64_t>& labels) {
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < scores.size(); ++i)
    for (size_t j = 0; j < scores.size(); ++j)
      if (labels[i] == 1 && labels[j] == 0) {
        wins += scores[i] > scores[j] ? 1.0 : scores[i] == scores[j] ? 0.5 : 0.0;
        pairs += 1;
      }
  return wins / pairs;
}

Tensor labels(std::vector<int64_t> values) {
  auto n = static_cast<int64_t>(values.size());
  return hg::from_vector(values, {n}, hg::kInt64);
}

}  // namespace

TEST_CASE("metrics: accuracy from logits, labels, bools and 0/1 float targets") {
  // argmax per row: [2, 1, 0] → 0; [0, 3, 1] → 1; [1, 1, 0] → 0 (the first of tied maxima, as torch.argmax)
  Tensor logits = hg::from_vector<float>({2, 1, 0, 0, 3, 1, 1, 1, 0}, {3, 3});
  CHECK(metrics::predicted_labels(logits) == std::vector<int64_t>{0, 1, 0});
  CHECK(metrics::accuracy(logits, labels({0, 2, 0})) == doctest::Approx(2.0 / 3));
  CHECK(metrics::accuracy(logits.to(hg::kFloat64), labels({0, 1, 0})) == 1.0);
  // Non-contiguous logits: the transpose [[2, 0, 1], [1, 3, 1], [0, 1, 0]] has argmaxes [0, 1, 1].
  CHECK(metrics::accuracy(logits.transpose(0, 1), labels({0, 1, 0})) == doctest::Approx(2.0 / 3));
  // Labels as int64 or bool, targets as bool or the float 0/1 of binary_cross_entropy_with_logits.
  Tensor scores = hg::from_vector<float>({-1.5f, 0.3f, 2.0f, -0.1f}, {4});
  Tensor targets = hg::from_vector<float>({0, 1, 0, 0}, {4});
  CHECK(metrics::accuracy(scores > 0, targets) == 0.75);                // predicted 0 1 1 0
  CHECK(metrics::accuracy(scores > 0, targets > 0.5) == 0.75);
  CHECK(metrics::accuracy(std::vector<int64_t>{3, 1, 4, 1, 5}, std::vector<int64_t>{3, 1, 4, 1, 6}) == 0.8);
  // Logits that require grad are fine: metrics never record a graph.
  Tensor trained = logits.clone().requires_grad_();
  CHECK(metrics::accuracy(trained, labels({0, 1, 0})) == 1.0);
}

TEST_CASE("metrics: confusion matrix, rows true and columns predicted") {
  //   predicted 0 1 2 2 1 0
  //   target    0 2 2 2 1 1   → (t,p): (0,0) (2,1) (2,2) (2,2) (1,1) (1,0)
  std::vector<int64_t> predicted{0, 1, 2, 2, 1, 0}, target{0, 2, 2, 2, 1, 1};
  Tensor cm = metrics::confusion_matrix(predicted, target);
  CHECK(cm.dtype() == hg::kInt64);
  CHECK(cm.sizes() == hg::Shape{3, 3});
  CHECK(cm.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0, 1, 1, 0, 0, 1, 2});
  // num_classes larger than the labels seen pads with zero rows and columns.
  Tensor padded = metrics::confusion_matrix(labels(predicted), labels(target), 4);
  CHECK(padded.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0});
  CHECK(padded.sum().item<int64_t>() == 6);
  CHECK_THROWS_WITH_AS(metrics::confusion_matrix(predicted, target, 2),
                       doctest::Contains("label 2 is out of range for num_classes = 2"), hg::Error);
  // A num_classes whose square overflows int64 wrote past a too-small matrix.
  CHECK_THROWS_WITH_AS(metrics::confusion_matrix(predicted, target, int64_t{1} << 32),
                       doctest::Contains("4294967296 classes would need a 4294967296 × 4294967296 matrix"), hg::Error);
}

TEST_CASE("metrics: balanced accuracy is the mean recall over the classes in the target") {
  // Same labels as above: recall of class 0 = 1/1, class 1 = 1/2, class 2 = 2/3 → (1 + 1/2 + 2/3) / 3.
  std::vector<int64_t> predicted{0, 1, 2, 2, 1, 0}, target{0, 2, 2, 2, 1, 1};
  CHECK(metrics::balanced_accuracy(predicted, target) == doctest::Approx((1 + 0.5 + 2.0 / 3) / 3));
  CHECK(metrics::balanced_accuracy(labels(predicted), labels(target)) ==
        doctest::Approx((1 + 0.5 + 2.0 / 3) / 3));
  // Class 3 is only predicted, never true: it does not count (sklearn). Recall of class 0 = 1/2.
  CHECK(metrics::balanced_accuracy(std::vector<int64_t>{0, 3}, std::vector<int64_t>{0, 0}) == 0.5);
  // Imbalanced binary: always predicting the majority class scores 0.9 accuracy but 0.5 balanced accuracy.
  std::vector<int64_t> majority(10, 0), truth(10, 0);
  truth[9] = 1;
  CHECK(metrics::accuracy(majority, truth) == doctest::Approx(0.9));
  CHECK(metrics::balanced_accuracy(majority, truth) == 0.5);
}

TEST_CASE("metrics: F1, binary and macro") {
  // predicted 1 1 0 0 1, target 1 0 0 1 1: class 1 has TP 2, FP 1, FN 1 → 2·2/(4+1+1) = 2/3;
  // class 0 has TP 1, FP 1 (index 3), FN 1 (index 1) → 2/4.
  std::vector<int64_t> predicted{1, 1, 0, 0, 1}, target{1, 0, 0, 1, 1};
  CHECK(metrics::f1_score(predicted, target) == doctest::Approx(2.0 / 3));
  CHECK(metrics::f1_score(predicted, target, metrics::Average::Binary, 0) == doctest::Approx(0.5));
  CHECK(metrics::f1_score(predicted, target, metrics::Average::Macro) == doctest::Approx((2.0 / 3 + 0.5) / 2));
  // Bool predictions from scores, float targets.
  Tensor scores = hg::from_vector<double>({2.0, 0.5, -1.0, -0.2, 3.0}, {5});
  CHECK(metrics::f1_score(scores > 0, hg::from_vector<double>({1, 0, 0, 1, 1}, {5})) == doctest::Approx(2.0 / 3));
  // No positives predicted or true: F1 is 0 (sklearn's zero_division=0), not NaN.
  CHECK(metrics::f1_score(std::vector<int64_t>{0, 0}, std::vector<int64_t>{0, 0}) == 0.0);
  // Macro over three classes (labels of the confusion-matrix test):
  //   class 0: TP 1, FP 1, FN 0 → 2/3;  class 1: TP 1, FP 1, FN 1 → 1/2;  class 2: TP 2, FP 0, FN 1 → 4/5.
  std::vector<int64_t> p3{0, 1, 2, 2, 1, 0}, t3{0, 2, 2, 2, 1, 1};
  CHECK(metrics::f1_score(p3, t3, metrics::Average::Macro) == doctest::Approx((2.0 / 3 + 0.5 + 0.8) / 3));
  // A class that is only predicted counts, with F1 0: (class 0: TP 1, FN 1 → 2/3; class 2: 0) / 2.
  CHECK(metrics::f1_score(std::vector<int64_t>{0, 2}, std::vector<int64_t>{0, 0}, metrics::Average::Macro) ==
        doctest::Approx(1.0 / 3));
  CHECK_THROWS_WITH_AS(metrics::f1_score(p3, t3), doctest::Contains("binary F1 got label 2"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::f1_score(predicted, target, metrics::Average::Binary, 2),
                       doctest::Contains("positive_label 2"), hg::Error);
}

TEST_CASE("metrics: ROC-AUC, exact with tied scores") {
  // sklearn's documentation example: 3 of the 4 (positive, negative) pairs are ordered correctly.
  CHECK(metrics::roc_auc(std::vector<double>{0.1, 0.4, 0.35, 0.8}, std::vector<int64_t>{0, 0, 1, 1}) == 0.75);
  // Ties: positives 2 and 3, negatives 1 and 2 → pairs (2>1) 1, (2=2) ½, (3>1) 1, (3>2) 1 → 3.5 / 4.
  CHECK(metrics::roc_auc(std::vector<double>{1, 2, 2, 3}, std::vector<int64_t>{0, 0, 1, 1}) == 0.875);
  // All scores equal: every pair is a tie.
  CHECK(metrics::roc_auc(std::vector<double>{5, 5, 5, 5}, std::vector<int64_t>{0, 1, 0, 1}) == 0.5);
  // Perfect and reversed rankings.
  CHECK(metrics::roc_auc(std::vector<double>{-3, -1, 2, 7}, std::vector<int64_t>{0, 0, 1, 1}) == 1.0);
  CHECK(metrics::roc_auc(std::vector<double>{-3, -1, 2, 7}, std::vector<int64_t>{1, 1, 0, 0}) == 0.0);
  // ±inf scores are ordered like any others.
  double inf = std::numeric_limits<double>::infinity();
  CHECK(metrics::roc_auc(std::vector<double>{-inf, 0, inf}, std::vector<int64_t>{0, 1, 1}) == 1.0);

  // Random scores on a coarse grid (many ties) against the pairwise definition; the AUC depends only on the
  // order of the scores, so a monotone transform (the sigmoid) leaves it unchanged.
  std::mt19937_64 rng(42);
  for (int trial = 0; trial < 20; ++trial) {
    size_t n = 2 + rng() % 60;
    std::vector<double> scores(n), squashed(n);
    std::vector<int64_t> y(n);
    for (size_t i = 0; i < n; ++i) {
      scores[i] = static_cast<double>(rng() % 7) - 3;
      y[i] = static_cast<int64_t>(rng() % 2);
      squashed[i] = 1 / (1 + std::exp(-scores[i]));
    }
    y[0] = 0, y[1] = 1;
    CHECK(metrics::roc_auc(scores, y) == doctest::Approx(pairwise_auc(scores, y)).epsilon(1e-12));
    CHECK(metrics::roc_auc(squashed, y) == doctest::Approx(pairwise_auc(scores, y)).epsilon(1e-12));
  }

  // Tensors: float32 [N] or [N, 1] scores; int64, bool or 0/1 float labels.
  Tensor scores = hg::from_vector<float>({0.1f, 0.4f, 0.35f, 0.8f}, {4});
  CHECK(metrics::roc_auc(scores, labels({0, 0, 1, 1})) == 0.75);
  CHECK(metrics::roc_auc(scores.reshape({4, 1}), hg::from_vector<float>({0, 0, 1, 1}, {4})) == 0.75);
  CHECK(metrics::roc_auc(scores, labels({0, 0, 1, 1}) > 0) == 0.75);
}

TEST_CASE("metrics: bad input is refused with the metric and what it expected") {
  CHECK_THROWS_WITH_AS(metrics::roc_auc(std::vector<double>{0.2, 0.9}, std::vector<int64_t>{1, 1}),
                       doctest::Contains("roc_auc: only one class present in the labels (2 positives, 0 negatives)"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(metrics::roc_auc(std::vector<double>{0.2, std::nan("")}, std::vector<int64_t>{0, 1}),
                       doctest::Contains("score at index 1 is NaN"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::roc_auc(std::vector<double>{0.2, 0.3}, std::vector<int64_t>{0, 2}),
                       doctest::Contains("label 2 at index 1; expected binary labels 0 or 1"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::roc_auc(hg::zeros({3, 2}), labels({0, 1, 0})),
                       doctest::Contains("expected float32/float64 scores [N] or [N, 1]"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::accuracy(hg::zeros({4, 3}), labels({0, 1})),
                       doctest::Contains("accuracy: 4 predictions but 2 targets"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::accuracy(hg::zeros({4}), labels({0, 1, 0, 1})),
                       doctest::Contains("threshold scores first"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::accuracy(hg::zeros({2, 1}), labels({0, 1})),
                       doctest::Contains("scores of shape [2, 1] hold one binary score per sample"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::accuracy(hg::zeros({2, 0}), labels({0, 1})),
                       doctest::Contains("have no classes"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::accuracy(labels({0, -1}), labels({0, 1})),
                       doctest::Contains("predicted label -1 at index 1 is negative"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::accuracy(labels({0, 1}), hg::from_vector<float>({0, 0.5f}, {2})),
                       doctest::Contains("target 0.5 at index 1 of a float32 tensor is not a class label"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::accuracy(labels({0, 1}), hg::zeros({2, 1}, hg::kInt64)),
                       doctest::Contains("targets of shape [2, 1]; expected labels [N]"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::accuracy(std::vector<int64_t>{}, std::vector<int64_t>{}),
                       doctest::Contains("accuracy: got no samples"), hg::Error);
  CHECK_THROWS_WITH_AS(metrics::f1_score(Tensor(), labels({0})), doctest::Contains("undefined"), hg::Error);
}

// The tensor overloads on each device (inputs moved there; the metrics copy what they need to the host).
HG_BACKEND_TEST(metrics_on_device) {
  Tensor logits = hgtest::uniform({12, 4}, -2, 2, 11).to(hg::kFloat32).to(device);
  Tensor target = hg::from_vector<int64_t>({0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}, {12}, hg::kInt64).to(device);
  Tensor scores = hgtest::uniform({12}, -1, 1, 12).to(device);
  Tensor binary = (hgtest::uniform({12}, 0, 1, 13) > 0.5).to(device);
  std::vector<int64_t> host_pred = hg::argmax(logits.to(hg::kCPU), 1).to_vector<int64_t>();
  std::vector<int64_t> host_target = target.to_vector<int64_t>();
  CHECK(metrics::accuracy(logits, target) == metrics::accuracy(host_pred, host_target));
  CHECK(metrics::f1_score(logits, target, metrics::Average::Macro) ==
        metrics::f1_score(host_pred, host_target, metrics::Average::Macro));
  CHECK(metrics::roc_auc(scores, binary) ==
        doctest::Approx(pairwise_auc(scores.to_vector<double>(), binary.to_vector<int64_t>())));
  // The metrics are host values whatever the inputs' device (the confusion matrix documented as a CPU tensor):
  // moved to `device` here only for the CPU-against-CUDA comparison of their values.
  const Tensor confusion = metrics::confusion_matrix(logits, target, 4);
  CHECK(confusion.device() == hg::kCPU);
  return {confusion.to(device),
          hg::from_vector<double>({metrics::accuracy(logits, target), metrics::balanced_accuracy(logits, target),
                                   metrics::f1_score(scores > 0, binary), metrics::roc_auc(scores, binary)},
                                  {4})
              .to(device)};
}
