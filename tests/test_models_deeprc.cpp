// models::DeepRC: shapes, attention over real sequences only, padding invariance, the attention-based sequence
// reduction, gradients (inputs and parameters, float64), LwPF per bag, a short training run on implanted-motif
// repertoires, CPU vs CUDA, errors. (The position features of spec I.1.9 are tested with the reader, in
// test_data_readers.cpp.)
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <hopgrad/hopgrad.h>
#include <hopgrad/models/deeprc.h>

#include "testing.h"

namespace {

using hg::Tensor;
using hg::Tensors;
namespace nn = hg::nn;
using hg::models::DeepRC;
using hg::models::DeepRCOptions;

constexpr double kInf = std::numeric_limits<double>::infinity();

/// A small DeepRC: 5 input features, 4 kernels of width 3, attention 1 × 4, output 1 layer.
DeepRCOptions tiny(double reduction = 1.0) {
  return DeepRCOptions()
      .in_features(5)
      .kernel_size(3)
      .kernels(4)
      .attention_layers(1)
      .attention_units(4)
      .sequence_reduction(reduction);
}

using hgtest::check_parameter_gradients;
using hgtest::randomize_parameters;

/// bool [B, N] padding mask from each bag's size.
Tensor mask_from_sizes(const std::vector<int64_t>& sizes, int64_t n) {
  std::vector<bool> m;
  for (int64_t size : sizes)
    for (int64_t i = 0; i < n; ++i) m.push_back(i >= size);
  return hg::from_vector(m, {static_cast<int64_t>(sizes.size()), n}, hg::kBool);
}

/// Every row of attention weights [B, N] sums to 1.
void check_sums_to_one(const Tensor& attention) {
  for (double total : hg::sum(attention, {1}).to(hg::kFloat64).to_vector<double>())
    CHECK(total == doctest::Approx(1.0).epsilon(1e-6));
}

}  // namespace

TEST_CASE("deeprc: paper defaults (spec E.3) and output shapes") {
  hg::manual_seed(0);
  DeepRC model;
  CHECK(model->embedding->weight.sizes() == hg::Shape{32, 23, 9});
  // Linear(32→32), SELU, Linear(32→32), SELU, Linear(32→1); output: one Linear(32→1).
  CHECK(model->attention->size() == 5);
  CHECK(model->output->size() == 1);
  // Weights ~ N(0, 1/(out·in·k)): the CNN's std is (32·23·9)^{-1/2} ≈ 0.0123.
  const double std_cnn = hg::std(model->embedding->weight).item<double>();
  CHECK(std_cnn == doctest::Approx(1.0 / std::sqrt(32.0 * 23 * 9)).epsilon(0.05));

  Tensor x = hgtest::uniform({2, 40, 12, 23}, 0, 1, 3).to(hg::kFloat32);
  Tensor mask = mask_from_sizes({40, 25}, 40);
  auto out = model(x, mask);
  CHECK(out.logits.sizes() == hg::Shape{2, 1});
  CHECK(out.attention.sizes() == hg::Shape{2, 40});
  CHECK(out.attention_logits.sizes() == hg::Shape{2, 40});
  // Default reduction 0.1: ⌊0.1 · 40⌋ = 4 and ⌊0.1 · 25⌋ = 2 sequences go through the model.
  CHECK(hg::sum(out.kept.to(hg::kInt64), {1}).to_vector<int64_t>() == std::vector<int64_t>{4, 2});
  check_sums_to_one(out.attention);
  // Sequences shorter than the kernel still embed (zero-padded to the kernel's width).
  CHECK(model->embed(hg::ones({3, 4, 23})).sizes() == hg::Shape{3, 32});
}

TEST_CASE("deeprc: attention weights are a distribution over each bag's real sequences") {
  DeepRC model(tiny());
  model->to(hg::kFloat64);
  randomize_parameters(*model, 1);
  Tensor x = hgtest::uniform({3, 6, 7, 5}, -1, 1, 11);
  Tensor mask = mask_from_sizes({6, 3, 1}, 6);
  auto out = model(x, mask);
  const std::vector<double> w = out.attention.to_vector<double>();
  const std::vector<int64_t> sizes{6, 3, 1};
  for (int64_t b = 0; b < 3; ++b) {
    double total = 0;
    for (int64_t i = 0; i < 6; ++i) {
      const double wi = w[static_cast<size_t>(b * 6 + i)];
      if (i >= sizes[b]) {
        CHECK(wi == 0.0);
      } else {
        CHECK(wi > 0.0);
      }
      total += wi;
    }
    CHECK(total == doctest::Approx(1.0).epsilon(1e-12));
  }
  CHECK(hg::sum(hg::ne(out.kept, hg::logical_not(mask)).to(hg::kInt64)).item<int64_t>() == 0);
  // The weights are softmax of the logits over the real sequences; the pooled vector gives the output.
  Tensor z = model->embed(x.reshape({18, 7, 5})).reshape({3, 6, 4});
  Tensor u = hg::masked_fill(model->attention_logits(z), mask, -kInf);
  hgtest::check_close(out.attention_logits, u, 1e-12, 1e-12, "attention logits");
  hgtest::check_close(out.attention, hg::softmax(u, 1), 1e-12, 1e-12, "attention = softmax over real sequences");
  Tensor r = hg::sum(out.attention.unsqueeze(2) * z, {1});
  hgtest::check_close(out.logits, model->output(r), 1e-12, 1e-12, "output network of Σ w_i z_i");
}

TEST_CASE("deeprc: padding invariance (padded sequences change nothing, whatever they hold)") {
  for (double reduction : {1.0, 0.5}) {
    CAPTURE(reduction);
    DeepRC model(tiny(reduction));
    model->to(hg::kFloat64);
    randomize_parameters(*model, 2);
    Tensor bag = hgtest::uniform({1, 4, 6, 5}, -1, 1, 21);
    // Two padded sequences holding large garbage: the mask must keep them out of the reduction and the pooling.
    Tensor padded = hg::cat({bag, hgtest::uniform({1, 2, 6, 5}, 5, 9, 22)}, 1);
    auto alone = model(bag);
    auto with_padding = model(padded, mask_from_sizes({4}, 6));
    hgtest::check_close(with_padding.logits, alone.logits, 1e-12, 1e-12, "logits");
    hgtest::check_close(with_padding.attention.narrow(1, 0, 4), alone.attention, 1e-12, 1e-12, "attention");
    CHECK(hg::sum(with_padding.attention.narrow(1, 4, 2)).item<double>() == 0.0);
    // And in a batch beside a longer bag (its rows padded to 7 sequences).
    Tensor other = hgtest::uniform({1, 7, 6, 5}, -1, 1, 23);
    auto batch = model(hg::cat({hg::pad(padded, {0, 0, 0, 0, 0, 1}), other}, 0), mask_from_sizes({4, 7}, 7));
    hgtest::check_close(batch.logits.narrow(0, 0, 1), alone.logits, 1e-12, 1e-12, "logits in a batch");
  }
  // Positions past a sequence's end are not masked: as in DeepRC, the max over positions includes windows over
  // padding, so a minibatch's bags are encoded to its longest sequence (collate_repertoires).
}

TEST_CASE("deeprc: sequence reduction keeps each bag's top ⌊fraction · n⌋ sequences by attention logit") {
  DeepRC reduced(tiny(0.1)), full(tiny(1.0));
  reduced->to(hg::kFloat64);
  randomize_parameters(*reduced, 3);
  full->to(hg::kFloat64);
  {  // the same weights in both
    hg::NoGradGuard no_grad;
    auto src = reduced->named_parameters();
    auto dst = full->named_parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].second.copy_(src[i].second);
  }
  Tensor x = hgtest::uniform({2, 25, 6, 5}, -1, 1, 31);
  Tensor mask = mask_from_sizes({25, 9}, 25);
  Tensor scores = reduced->score_sequences(x, mask);
  CHECK(std::isinf(scores.to_vector<double>()[25 + 9]));
  auto red = reduced->reduce(x, mask);
  // ⌊2.5⌋ = 2 for the first bag; ⌊0.9⌋ = 0 → at least 1 for the second.
  CHECK(red.instances.sizes() == hg::Shape{2, 2, 6, 5});
  CHECK(red.padding_mask.to_vector<bool>() == std::vector<bool>{false, false, false, true});
  auto [top, top_index] = hg::topk(scores, 2, 1);
  CHECK(red.index.to_vector<int64_t>() == top_index.to_vector<int64_t>());
  // The first bag's kept sequences are its two highest-scoring ones, in that order.
  hgtest::check_close(red.instances.select(0, 0), hg::index_select(x.select(0, 0), 0, top_index.select(0, 0)), 0, 0,
                      "gathered sequences");

  // The forward pass equals the unreduced model on the kept sequences, weights placed at their positions.
  auto out = reduced(x, mask);
  auto expect = full(red.instances, red.padding_mask);
  hgtest::check_close(out.logits, expect.logits, 1e-12, 1e-12, "logits of the reduced bags");
  const std::vector<double> w = out.attention.to_vector<double>(), ew = expect.attention.to_vector<double>();
  const std::vector<int64_t> idx = red.index.to_vector<int64_t>();
  CHECK(w[static_cast<size_t>(idx[0])] == doctest::Approx(ew[0]));
  CHECK(w[static_cast<size_t>(idx[1])] == doctest::Approx(ew[1]));
  CHECK(w[static_cast<size_t>(25 + idx[2])] == doctest::Approx(1.0));
  CHECK(hg::sum(out.kept.to(hg::kInt64)).item<int64_t>() == 3);
  check_sums_to_one(out.attention);
  // Sequences reduced away have weight 0 and logit −inf (they never reached the differentiable pass).
  const std::vector<bool> kept = out.kept.to_vector<bool>();
  const std::vector<double> u = out.attention_logits.to_vector<double>();
  for (size_t i = 0; i < kept.size(); ++i)
    if (!kept[i]) CHECK((w[i] == 0.0 && std::isinf(u[i]) && u[i] < 0));

  // Chunked scoring gives the same logits as one pass.
  DeepRC chunked(tiny(0.1).reduction_chunk(7));
  chunked->to(hg::kFloat64);
  {
    hg::NoGradGuard no_grad;
    auto src = reduced->named_parameters();
    auto dst = chunked->named_parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].second.copy_(src[i].second);
  }
  hgtest::check_close(chunked->score_sequences(x, mask), scores, 0, 0, "chunked scoring");
}

TEST_CASE("deeprc gradchecks: inputs (non-contiguous) and parameters, with and without reduction") {
  for (double reduction : {1.0, 0.5}) {
    CAPTURE(reduction);
    DeepRC model(tiny(reduction));
    model->to(hg::kFloat64);
    randomize_parameters(*model, 4);
    Tensor mask = mask_from_sizes({4, 2}, 4);
    // Stored as [B, N, F, L] and transposed inside: the model sees a non-contiguous [B, N, L, F].
    Tensor x = hgtest::uniform({2, 4, 5, 4}, -1, 1, 41);
    hgtest::gradcheck([&](const Tensors& t) { return model(t[0].transpose(2, 3), mask).logits; }, {x});
    hgtest::gradcheck([&](const Tensors& t) { return model(t[0].transpose(2, 3), mask).attention; }, {x});
    Tensor xc = x.transpose(2, 3).contiguous();
    check_parameter_gradients(*model, [&] { return model(xc, mask).logits; });
  }
}

TEST_CASE("deeprc: other separations and LwPF forgetting per bag") {
  const Tensor x = hgtest::uniform({2, 6, 5, 5}, -1, 1, 51);
  const Tensor mask = mask_from_sizes({6, 4}, 6);
  SUBCASE("sparsemax: sparse weights summing to 1 over real sequences") {
    DeepRC model(tiny().separation(nn::SeparationKind::Sparsemax));
    model->to(hg::kFloat64);
    randomize_parameters(*model, 5, 2.0);
    auto out = model(x, mask);
    check_sums_to_one(out.attention);
    CHECK(hg::min(out.attention).item<double>() >= 0.0);
    check_parameter_gradients(*model, [&] { return model(x, mask).logits; });
  }
  SUBCASE("PFU: the median is each bag's (B.3), so a bag's output does not depend on the others") {
    DeepRC model(tiny().forgetting(nn::ForgettingOptions(nn::ForgettingKind::PFU)));
    model->to(hg::kFloat64);
    randomize_parameters(*model, 6);
    model->eval();  // no threshold noise
    auto both = model(x, mask);
    auto first = model(x.narrow(0, 0, 1), mask.narrow(0, 0, 1));
    auto second = model(x.narrow(0, 1, 1).narrow(1, 0, 4));
    hgtest::check_close(both.logits.select(0, 0), first.logits.select(0, 0), 1e-12, 1e-12, "bag 0 alone");
    hgtest::check_close(both.logits.select(0, 1), second.logits.select(0, 0), 1e-12, 1e-12, "bag 1 alone, unpadded");
    // Forgetting: the weights of a bag sum to less than 1, and every weight is below the median logit is 0.
    const std::vector<double> total = hg::sum(both.attention, {1}).to_vector<double>();
    CHECK(total[0] < 1.0);
    CHECK(total[1] < 1.0);
    CHECK(hg::sum(hg::logical_and(hg::eq(both.attention, 0.0), hg::logical_not(mask)).to(hg::kInt64)).item<int64_t>() >
          0);
  }
  SUBCASE("kinds without explicit weights are refused") {
    CHECK_THROWS_WITH_AS(DeepRC(tiny().separation(nn::SeparationKind::Linear)),
                         doctest::Contains("separation 'linear' does not form them"), hg::Error);
  }
}

TEST_CASE("deeprc: a short training run on implanted-motif repertoires lowers the loss") {
  hg::manual_seed(7);
  auto sim = hg::data::simulate_repertoires(hg::data::SimulatedRepertoireOptions()
                                                .num_repertoires(16)
                                                .sequences_per_repertoire(40)
                                                .witness_rate(0.1)
                                                .motif_length(3)
                                                .sequence_length(8, 12)
                                                .seed(3));
  auto data = std::make_shared<const hg::data::DeepRCDataset>(sim.dataset);
  hg::data::RepertoireDataset repertoires(data, data->binary_targets("status", "True"));
  std::vector<hg::data::Bag> bags;
  for (int64_t i = 0; i < repertoires.size(); ++i) bags.push_back(repertoires.get(i));
  hg::data::BagBatch batch = hg::data::collate_repertoires(bags);
  DeepRC model(DeepRCOptions().kernels(8).attention_units(8).sequence_reduction(0.25));
  hg::optim::Adam adam(model->parameters(), hg::optim::AdamOptions(1e-2).eps(1e-4));
  auto loss_of = [&] {
    return hg::binary_cross_entropy_with_logits(model(batch.instances, batch.padding_mask).logits.squeeze(1),
                                                batch.labels);
  };
  const double first = loss_of().item<float>();
  for (int step = 0; step < 30; ++step) {
    Tensor loss = loss_of();
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  const double last = loss_of().item<float>();
  CAPTURE(first);
  CAPTURE(last);
  CHECK(last < 0.5 * first);
}

HG_BACKEND_TEST(deeprc_forward_backward) {
  hg::manual_seed(0);
  DeepRC model(tiny(0.5));
  randomize_parameters(*model, 8);
  model->to(device);
  Tensor x = hgtest::uniform({2, 6, 7, 5}, -1, 1, 61).to(hg::kFloat32).to(device);
  Tensor mask = mask_from_sizes({6, 3}, 6).to(device);
  auto out = model(x, mask);
  CHECK(hg::sum(out.kept.to(hg::kInt64)).item<int64_t>() == 4);  // ⌊3⌋ + max(1, ⌊1.5⌋)
  CHECK(hg::sum(out.attention).item<float>() == doctest::Approx(2.0f));
  hg::sum(out.logits * out.logits).backward();
  return {out.logits, out.attention, model->embedding->weight.grad(), model->attention->ptr<nn::LinearImpl>(0)->weight.grad()};
}

TEST_CASE("deeprc: bad inputs and options are refused with the shapes named") {
  DeepRC model(tiny());
  CHECK_THROWS_WITH_AS(model(hg::zeros({2, 3, 5})), doctest::Contains("expected instances [bags, sequences, length, 5]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(model(hg::zeros({2, 3, 4, 6})), doctest::Contains("got float32[2, 3, 4, 6]"), hg::Error);
  CHECK_THROWS_WITH_AS(model(hg::zeros({2, 3, 4, 5}), hg::zeros({2, 3})),
                       doctest::Contains("expected padding_mask bool [2, 3]"), hg::Error);
  CHECK_THROWS_WITH_AS(model(hg::zeros({2, 3, 4, 5}), hg::zeros({2, 4}, hg::kBool)),
                       doctest::Contains("expected padding_mask bool [2, 3]"), hg::Error);
  CHECK_THROWS_WITH_AS(model(hg::zeros({2, 3, 4, 5}, hg::kInt64)), doctest::Contains("of a floating dtype"), hg::Error);
  CHECK_THROWS_WITH_AS(DeepRC(tiny(0.0)), doctest::Contains("sequence_reduction is the share"), hg::Error);
  CHECK_THROWS_WITH_AS(DeepRC(tiny(1.5)), doctest::Contains("in (0, 1], got 1.5"), hg::Error);
  CHECK_THROWS_WITH_AS(DeepRC(tiny().kernels(0)), doctest::Contains("must be positive"), hg::Error);
}
