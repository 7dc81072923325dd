// Hopfield layers (nn/hopfield/hopfield.h, hopfield_pooling.h, hopfield_layer.h, encoder_layer.h, energy.h):
// spec I.1's mechanism tests (one update is attention, the energy never increases, retrieval from a noisy copy,
// the stopping rule, the zero association, per-head β, masks), PyTorch golden values of the association and of
// every gradient (tests/fixtures/hopfield_layers.txt, scripts/make_hopfield_fixtures.py), finite-difference
// checks of input and parameter gradients for the main option combinations, printing and errors.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "fixture_reader.h"
#include "testing.h"

using hg::Tensor;
namespace nn = hg::nn;

namespace {

using Tensors = hg::Tensors;
constexpr double kInf = std::numeric_limits<double>::infinity();

hg::Tensor normal64(hg::IntArrayRef shape, uint64_t seed, double scale = 1.0) {
  hg::Generator gen(seed);
  return hg::randn(shape, hg::TensorOptions(hg::kFloat64), &gen) * scale;
}

/// Options with the three input LayerNorms off (what the hand computations below assume).
nn::HopfieldOptions plain(int64_t input_size) { return hgtest::hopfield_options_without_norms(input_size); }

using hgtest::check_parameter_gradients;
using hgtest::randomize_parameters;

/// Multi-head softmax attention written out with ops, from a fused Hopfield's parameters:
/// concat_h(softmax(β (X W_q,h + b) (Y W_k,h + b)ᵀ + mask) (Y W_v,h + b)) W_Oᵀ + b_O.
Tensor hand_attention(const nn::HopfieldImpl& hopfield, const Tensor& stored, const Tensor& state, double beta,
                      const Tensor& bool_mask = {}) {
  const auto& core = *hopfield.association_core;
  const int64_t H = hopfield.num_heads(), d = hopfield.head_dim(), E = H * d;
  auto rows = [&](const Tensor& t, int64_t i) { return t.narrow(0, i * E, E); };
  Tensor q = hg::linear(state, rows(core.in_proj_weight, 0), rows(core.in_proj_bias, 0));
  Tensor k = hg::linear(stored, rows(core.in_proj_weight, 1), rows(core.in_proj_bias, 1));
  Tensor v = hg::linear(stored, rows(core.in_proj_weight, 2), rows(core.in_proj_bias, 2));
  Tensors heads;
  for (int64_t h = 0; h < H; ++h) {
    Tensor qh = q.narrow(2, h * d, d), kh = k.narrow(2, h * d, d), vh = v.narrow(2, h * d, d);
    Tensor scores = hg::matmul(qh, kh.transpose(1, 2)) * beta;  // [B, L, S]
    if (bool_mask.defined()) scores = hg::masked_fill(scores, bool_mask, -kInf);
    heads.push_back(hg::matmul(hg::softmax(scores, -1), vh));
  }
  return core.out_proj(hg::cat(heads, 2));
}

}  // namespace

// ---- spec I.1.1: one association is attention ------------------------------------------------------------

TEST_CASE("hopfield: update_steps_max = 0 without LayerNorms is multi-head attention (and MultiheadAttention)") {
  nn::Hopfield hopfield(plain(6).num_heads(2));
  hopfield->to(hg::kFloat64);
  randomize_parameters(*hopfield, 1);
  Tensor x = normal64({2, 4, 6}, 2), y = normal64({2, 5, 6}, 3);
  Tensor mask = hg::from_vector(std::vector<bool>{false, true, false, false, true, false, false, false, false, false,
                                                  false, false, true, false, false, true, true, true, true, false},
                                {4, 5});
  Tensor got = hopfield(y, x, y, Tensor(), mask);
  hgtest::check_close(got, hand_attention(*hopfield, y, x, 1.0 / std::sqrt(3.0), mask), 1e-12, 1e-13,
                      "Hopfield vs hand-written attention");

  // β = 1/√d_k and the fused [q; k; v] rows are exactly torch.nn.MultiheadAttention's: copy the weights over.
  nn::MultiheadAttention attention(nn::MultiheadAttentionOptions(6, 2).batch_first(true));
  attention->to(hg::kFloat64);
  {
    hg::NoGradGuard no_grad;
    attention->in_proj_weight.copy_(hopfield->association_core->in_proj_weight);
    attention->in_proj_bias.copy_(hopfield->association_core->in_proj_bias);
    attention->out_proj->weight.copy_(hopfield->association_core->out_proj->weight);
    attention->out_proj->bias.copy_(hopfield->association_core->out_proj->bias);
  }
  auto [reference, weights] = attention(x, y, y, Tensor(), false, mask);
  hgtest::check_close(got, reference, 1e-12, 1e-13, "Hopfield vs MultiheadAttention (float64)");
  // float32: one update equals softmax attention to 1e-6.
  hopfield->to(hg::kFloat32);
  attention->to(hg::kFloat32);
  auto [reference32, unused] = attention(x.to(hg::kFloat32), y.to(hg::kFloat32), y.to(hg::kFloat32), Tensor(), false, mask);
  CHECK(hg::max_abs_diff(hopfield(y.to(hg::kFloat32), x.to(hg::kFloat32), y.to(hg::kFloat32), Tensor(), mask), reference32) <
        1e-6);
}

// ---- spec A.1 / I.1.1: energy and static retrieval ---------------------------------------------------------

TEST_CASE("hopfield energy: never increases along retrieve() updates, within [0, 2M²]") {
  for (double beta : {0.1, 1.0, 8.0}) {
    Tensor stored = normal64({3, 20, 8}, 11);       // [batch, N, d]
    Tensor state = normal64({3, 4, 8}, 12, 2.0);    // [batch, L, d]
    Tensor m2 = hg::amax(hg::sum(hg::square(stored), {-1}), {-1}, true);
    Tensor previous = nn::energy(state, stored, beta);
    Tensor xi = state;
    for (int step = 0; step < 6; ++step) {
      xi = nn::retrieve(stored, xi, beta, 1);
      Tensor e = nn::energy(xi, stored, beta);
      CHECK_MESSAGE(hg::amax(e - previous, {0, 1}).item<double>() <= 1e-12, "beta ", beta, " step ", step);
      CHECK(hg::amin(e, {0, 1}).item<double>() >= -1e-12);
      CHECK(hg::amax(e - 2.0 * m2, {0, 1}).item<double>() <= 1e-12);
      previous = e;
    }
    // retrieve(steps = n) is n single updates.
    hgtest::check_close(nn::retrieve(stored, state, beta, 6), xi, 1e-12, 1e-13, "retrieve(6)");
  }
  // Hand-computed: one stored pattern x, ξ = 0: E = −β⁻¹ log e⁰ + 0 + β⁻¹ log 1 + ½‖x‖² = ½‖x‖².
  Tensor x = hg::from_vector(std::vector<double>{3.0, 4.0}, {1, 2});
  CHECK(nn::energy(hg::zeros({1, 2}, hg::kFloat64), x, 2.0).item<double>() == doctest::Approx(12.5));
}

TEST_CASE("hopfield energy and retrieve: gradients (float64 finite differences, second order)") {
  Tensor stored = normal64({2, 5, 3}, 21), state = normal64({2, 2, 3}, 22);
  hgtest::gradcheck([](const Tensors& t) { return nn::energy(t[0], t[1], 0.7); }, {state, stored});
  hgtest::gradcheck([](const Tensors& t) { return nn::retrieve(t[0], t[1], 1.3, 2); },
                    {stored, state.transpose(1, 2).contiguous().transpose(1, 2)});
  hgtest::gradgradcheck([](const Tensors& t) { return nn::retrieve(t[0], t[1], 1.3, 1); }, {stored, state});
}

TEST_CASE("hopfield: static retrieval from a noisy copy lands on the source (d = 64, N = 100, beta = 1)") {
  // Random bipolar (±1 per component) patterns: x_iᵀx_i = 64, x_iᵀx_j ~ N(0, 64), so the separation Δ is large
  // and one update retrieves (Ramsauer et al., Theorem 4).
  const int64_t d = 64, N = 100;
  hg::Generator gen(31);
  Tensor stored = hg::where(hg::rand({N, d}, hg::kFloat64, &gen) < 0.5, -1.0, hg::ones({N, d}, hg::kFloat64));
  Tensor source = stored.narrow(0, 17, 1);
  Tensor flip = hg::rand({1, d}, hg::kFloat64, &gen) < 0.15;  // ~10 flipped components
  Tensor noisy = hg::where(flip, -source, source) + 0.1 * hg::randn({1, d}, hg::kFloat64, &gen);
  Tensor retrieved = nn::retrieve(stored, noisy, 1.0, 1);
  CHECK(hg::max_abs_diff(retrieved, source) < 1e-3);

  // The same through a parameter-free Hopfield layer: everything static, β = 1 by default.
  nn::Hopfield layer(nn::HopfieldOptions()
                         .stored_pattern_as_static(true)
                         .state_pattern_as_static(true)
                         .pattern_projection_as_static(true)
                         .disable_out_projection(true)
                         .normalize_stored_pattern(false)
                         .normalize_stored_pattern_affine(false)
                         .normalize_state_pattern(false)
                         .normalize_state_pattern_affine(false)
                         .normalize_pattern_projection(false)
                         .normalize_pattern_projection_affine(false));
  CHECK(layer->parameters().empty());
  Tensor out = layer(stored.unsqueeze(0), noisy.unsqueeze(0), stored.unsqueeze(0));
  hgtest::check_close(out.squeeze(0), retrieved, 1e-12, 1e-13, "static Hopfield layer vs retrieve");
}

// ---- spec I.1.2: the stopping rule ----------------------------------------------------------------------------

TEST_CASE("hopfield: eps huge gives exactly two separations; None with a small eps converges, counted per head") {
  Tensor x = normal64({2, 3, 4}, 41), y = normal64({2, 5, 4}, 42, 2.0);
  nn::Hopfield hopfield(plain(4).num_heads(2).update_steps_max(3).update_steps_eps(1e9));
  hopfield->to(hg::kFloat64);
  randomize_parameters(*hopfield, 43, 1.0);
  auto r = hopfield->associate(y, x, y, nn::AssociateOptions().return_association(true));
  CHECK(r.update_steps == std::vector<int64_t>{1, 1});
  // By hand: ξ₀ = softmax(β Q Kᵀ), Q₁ = ξ₀ K, ξ₁ = softmax(β Q₁ Kᵀ), out = W_O concat(ξ₁ V).
  const auto& core = *hopfield->association_core;
  const double beta = 1.0 / std::sqrt(2.0);
  auto heads = [](const Tensor& t) { return t.reshape({2, t.size(1), 2, 2}).permute({0, 2, 1, 3}); };
  Tensor q = heads(hg::linear(x, core.in_proj_weight.narrow(0, 0, 4), core.in_proj_bias.narrow(0, 0, 4)));
  Tensor k = heads(hg::linear(y, core.in_proj_weight.narrow(0, 4, 4), core.in_proj_bias.narrow(0, 4, 4)));
  Tensor v = heads(hg::linear(y, core.in_proj_weight.narrow(0, 8, 4), core.in_proj_bias.narrow(0, 8, 4)));
  Tensor xi0 = hg::softmax(hg::matmul(q * beta, k.transpose(-2, -1)), -1);
  Tensor xi1 = hg::softmax(hg::matmul(hg::matmul(xi0, k) * beta, k.transpose(-2, -1)), -1);
  hgtest::check_close(r.association, xi1, 1e-12, 1e-13, "association after one update");
  hgtest::check_close(r.output, core.out_proj(hg::matmul(xi1, v).permute({0, 2, 1, 3}).reshape({2, 3, 4})), 1e-12,
                      1e-13, "output after one update");

  // update_steps_max = 0: one separation, no update.
  hopfield->options.update_steps_max(0);
  CHECK(hopfield->associate(y, x, y).update_steps == std::vector<int64_t>{0, 0});

  // Until converged: finite, per head, and the final ξ is (nearly) a fixed point of the update.
  hopfield->options.update_steps_max(std::nullopt).update_steps_eps(1e-9);
  auto converged = hopfield->associate(y, x, y, nn::AssociateOptions().return_association(true));
  for (int64_t steps : converged.update_steps) CHECK((steps >= 1 && steps < 10000));
  Tensor xi = converged.association;
  Tensor again = hg::softmax(hg::matmul(hg::matmul(xi, k) * beta, k.transpose(-2, -1)), -1);
  CHECK(hg::max_abs_diff(again, xi) < 1e-8);

  // The safety cap allows exactly update_steps_cap updates: the heads that converge after n updates run with a cap
  // of n, and a cap of n − 1 stops them.
  const int64_t needed = *std::max_element(converged.update_steps.begin(), converged.update_steps.end());
  hopfield->options.update_steps_cap(needed);
  CHECK(hopfield->associate(y, x, y).update_steps == converged.update_steps);
  hopfield->options.update_steps_cap(needed - 1);
  const std::string stopped = fmt::format("after update_steps_cap = {} updates", needed - 1);
  CHECK_THROWS_WITH_AS(hopfield->associate(y, x, y), doctest::Contains(stopped.c_str()), hg::Error);
  // An unreachable eps with a cap of 3 updates is an error that says what to change.
  hopfield->options.update_steps_eps(1e-300).update_steps_cap(3);
  CHECK_THROWS_WITH_AS(hopfield->associate(y, x, y), doctest::Contains("after update_steps_cap = 3 updates"),
                       hg::Error);
}

TEST_CASE("hopfield: a converged head keeps its association while the others update") {
  // Head 0 with a tiny β is near-uniform at once (its change falls below eps after one update); head 1 with a
  // large β keeps moving. Each head's association equals a one-head layer run with that head's β alone.
  Tensor x = normal64({1, 2, 2}, 51), y = normal64({1, 6, 2}, 52, 2.0);
  auto options = plain(2)
                     .hidden_size(2)
                     .num_heads(2)
                     .stored_pattern_as_static(true)
                     .state_pattern_as_static(true)
                     .pattern_projection_as_static(true)
                     .disable_out_projection(true)
                     .scaling({1e-4, 3.0})
                     .update_steps_max(4)
                     .update_steps_eps(1e-3);
  nn::Hopfield both(options);
  auto r = both->associate(y, x, y, nn::AssociateOptions().return_association(true));
  CHECK(r.update_steps[0] == 1);
  CHECK(r.update_steps[1] > 1);
  for (int64_t h = 0; h < 2; ++h) {
    nn::Hopfield single(nn::HopfieldOptions(options).num_heads(1).scaling(options.scaling().values[h]));
    auto s = single->associate(y, x, y, nn::AssociateOptions().return_association(true));
    CHECK(s.update_steps[0] == r.update_steps[static_cast<size_t>(h)]);
    hgtest::check_close(r.association.narrow(1, h, 1), s.association, 1e-12, 1e-14, fmt::format("head {}", h));
    hgtest::check_close(r.output.narrow(2, 2 * h, 2), s.output, 1e-12, 1e-14, fmt::format("output of head {}", h));
  }
}

// ---- spec I.1.3: the zero association; per-head β; masks ---------------------------------------------------

TEST_CASE("hopfield: add_zero_association scales the output by Σe^s / (Σe^s + 1)") {
  auto options = plain(3)
                     .stored_pattern_as_static(true)
                     .state_pattern_as_static(true)
                     .pattern_projection_as_static(true)
                     .disable_out_projection(true)
                     .scaling(0.8);
  Tensor x = normal64({2, 3, 3}, 61), y = normal64({2, 4, 3}, 62), v = normal64({2, 4, 5}, 63);
  nn::Hopfield without(options), with(nn::HopfieldOptions(options).add_zero_association(true));
  Tensor base = without(y, x, v), zero = with(y, x, v);
  Tensor mass = hg::sum(hg::exp(hg::matmul(x * 0.8, y.transpose(1, 2))), {-1}, true);  // Σ e^s [2, 3, 1]
  hgtest::check_close(zero, base * (mass / (mass + 1.0)), 1e-12, 1e-14, "zero association");
  auto r = with->associate(y, x, v, nn::AssociateOptions().return_association(true).return_projected_patterns(true));
  CHECK(r.association.sizes() == hg::Shape{2, 1, 3, 5});
  CHECK(r.projected_patterns.sizes() == hg::Shape{2, 1, 5, 5});
  hgtest::check_close(r.association.narrow(3, 4, 1).squeeze(1), 1.0 / (mass + 1.0), 1e-12, 1e-14, "zero weight");
}

TEST_CASE("hopfield: per-head beta gives head h exactly beta_h; compat reproduces hflayers' tiling") {
  const int64_t H = 2, d = 4;
  auto options = plain(8).num_heads(H).scaling({0.5, 2.0});
  nn::Hopfield hopfield(options);
  hopfield->to(hg::kFloat64);
  randomize_parameters(*hopfield, 71);
  Tensor x = normal64({2, 3, 8}, 72), y = normal64({2, 5, 8}, 73);
  auto r = hopfield->associate(y, x, y, nn::AssociateOptions().return_association(true));
  const auto& core = *hopfield->association_core;
  auto heads = [&](const Tensor& t) { return t.reshape({2, t.size(1), H, d}).permute({0, 2, 1, 3}); };
  Tensor q = heads(hg::linear(x, core.in_proj_weight.narrow(0, 0, 8), core.in_proj_bias.narrow(0, 0, 8)));
  Tensor k = heads(hg::linear(y, core.in_proj_weight.narrow(0, 8, 8), core.in_proj_bias.narrow(0, 8, 8)));
  Tensor scores = hg::matmul(q, k.transpose(-2, -1));
  for (int64_t h = 0; h < H; ++h)
    hgtest::check_close(r.association.narrow(1, h, 1), hg::softmax(scores.narrow(1, h, 1) * (h == 0 ? 0.5 : 2.0), -1),
                        1e-12, 1e-14, fmt::format("head {}", h));

  // compat: feature j of head h is scaled by β[(h·d + j) mod H] = β[j mod 2], for both heads.
  nn::Hopfield tiled(nn::HopfieldOptions(options).compat(true));
  tiled->to(hg::kFloat64);
  for (const auto& [name, p] : hopfield->named_parameters()) {
    hg::NoGradGuard no_grad;
    for (const auto& [other, t] : tiled->named_parameters())
      if (other == name) t.copy_(p);
  }
  Tensor beta_tiled = hg::from_vector(std::vector<double>{0.5, 2.0, 0.5, 2.0}, {1, 1, 1, 4});
  Tensor expected = hg::softmax(hg::matmul(q * beta_tiled, k.transpose(-2, -1)), -1);
  hgtest::check_close(tiled->associate(y, x, y, nn::AssociateOptions().return_association(true)).association, expected,
                      1e-12, 1e-14, "compat tiling");
}

TEST_CASE("hopfield: masks — a fully masked row gives zeros (not NaN), padding and float masks, gradients finite") {
  nn::Hopfield hopfield(plain(4).num_heads(2));
  hopfield->to(hg::kFloat64);
  randomize_parameters(*hopfield, 81);
  Tensor x = normal64({2, 3, 4}, 82).requires_grad_(), y = normal64({2, 4, 4}, 83).requires_grad_();
  // Batch 1 has every stored pattern padded; query 0 of every batch is forbidden everything by the bool mask.
  Tensor padding = hg::from_vector(std::vector<bool>{false, true, false, false, true, true, true, true}, {2, 4});
  Tensor forbid_first = hg::from_vector(
      std::vector<bool>{true, true, true, true, false, false, false, false, false, false, false, false}, {3, 4});
  auto r = hopfield->associate(
      y, x, y,
      nn::AssociateOptions().stored_pattern_padding_mask(padding).association_mask(forbid_first).return_association(true));
  Tensor xi = r.association;
  CHECK(hg::max_abs_diff(xi.select(0, 1), hg::zeros({2, 3, 4}, hg::kFloat64)) == 0.0);
  CHECK(hg::max_abs_diff(xi.select(2, 0), hg::zeros({2, 2, 4}, hg::kFloat64)) == 0.0);
  CHECK(hg::max_abs_diff(xi.select(3, 1).select(0, 0), hg::zeros({2, 3}, hg::kFloat64)) == 0.0);
  // Rows with no key left give the out-projection's bias.
  Tensor bias = hopfield->association_core->out_proj->bias;
  hgtest::check_close(r.output.select(0, 1), bias.expand({3, 4}), 1e-14, 0, "fully padded batch");
  hg::sum(r.output).backward();
  CHECK(std::isfinite(hg::sum(x.grad()).item<double>()));
  CHECK(std::isfinite(hg::sum(y.grad()).item<double>()));

  // A float mask is added to the scores: −1e9 on a key acts as excluding it.
  Tensor excluded = hg::from_vector(std::vector<bool>{false, true, false, false, true, false, false, true}, {2, 4});
  Tensor additive = hg::where(excluded, -1e9, hg::zeros({2, 4}, hg::kFloat64));
  Tensor x2 = x.detach().narrow(1, 0, 2);
  hgtest::check_close(hopfield(y.detach(), x2, y.detach(), Tensor(), additive),
                      hopfield(y.detach(), x2, y.detach(), Tensor(), excluded), 1e-12, 1e-14, "float vs bool mask");

  // One unbatched sample [N, features] is batch 1.
  hgtest::check_close(hopfield(y.detach().select(0, 0), x2.select(0, 0), y.detach().select(0, 0)),
                      hopfield(y.detach().narrow(0, 0, 1), x2.narrow(0, 0, 1), y.detach().narrow(0, 0, 1)).squeeze(0),
                      1e-14, 0, "unbatched");
}

// ---- golden values: the association of spec A.3 and every gradient against PyTorch -------------------------

namespace {

/// State 6, stored 5 and projection 3 wide, hidden 4, pattern 2, two heads (the fixtures' separate-width cases).
nn::HopfieldOptions separate_widths() {
  return nn::HopfieldOptions(6).stored_pattern_size(5).pattern_projection_size(3).hidden_size(4).pattern_size(2).num_heads(
      2);
}

/// The C++ options of each case of scripts/make_hopfield_fixtures.py.
nn::HopfieldOptions fixture_options(const std::string& name) {
  if (name == "fused_self") return nn::HopfieldOptions(6).num_heads(2);
  if (name == "separate_iterated")
    return separate_widths()
        .update_steps_max(3)
        .normalize_hopfield_space(true)
        .normalize_hopfield_space_affine(true)
        .scaling(0.9);
  if (name == "static_connected")
    return plain(6)
        .hidden_size(3)
        .num_heads(2)
        .state_pattern_as_static(true)
        .pattern_projection_as_connected(true)
        .add_zero_association(true)
        .update_steps_max(2)
        .scaling(0.7);
  if (name == "static_per_head")
    return plain(4)
        .hidden_size(4)
        .num_heads(2)
        .stored_pattern_as_static(true)
        .pattern_projection_as_static(true)
        .scaling({0.5, 2.0})
        .update_steps_max(std::nullopt)
        .update_steps_eps(0.018)
        .disable_out_projection(true)
        .association_activation("tanh")
        .normalize_stored_pattern(true);
  if (name == "bias_pattern")
    return nn::HopfieldOptions(6).num_heads(3).concat_bias_pattern(true).batch_first(false).update_steps_max(1).input_bias(
        false);
  if (name == "pooled") return separate_widths().scaling({0.5, 2.0});
  if (name == "pooled_one_head") return nn::HopfieldOptions(6).scaling(0.8);
  HG_FAIL("no fixture case {}", name);
}

Tensors check_fixture_case(const std::string& name, hg::Device device) {
  auto fixture = hgtest::Fixture::load("hopfield_layers");
  nn::Hopfield hopfield(fixture_options(name));
  hopfield->to(device, hg::kFloat64);
  // The fixture holds exactly the module's parameters, under hflayers' names.
  size_t stored = 0;
  for (const auto& key : fixture.names())
    if (key.starts_with(name + ".param.")) ++stored;
  auto params = hopfield->named_parameters();
  CHECK_MESSAGE(params.size() == stored, name, ": the module has ", params.size(), " parameters, PyTorch ", stored);
  {
    hg::NoGradGuard no_grad;
    for (const auto& [pname, p] : params) {
      REQUIRE_MESSAGE(fixture.contains(name + ".param." + pname), "no PyTorch parameter named ", pname);
      p.copy_(fixture.tensor(name + ".param." + pname));
    }
  }
  auto input = [&](const std::string& key) {
    return fixture.contains(name + "." + key) ? fixture.tensor(name + "." + key).to(device) : Tensor();
  };
  Tensor single = input("input");
  Tensor stored_p = single.defined() ? single : input("stored"), state = single.defined() ? single : input("state"),
         projection = single.defined() ? single : input("projection");
  for (const Tensor& t : {stored_p, state, projection}) t.requires_grad_();
  Tensors results;
  // Twice: asking for ξ (the association as spec A.3 writes it), then not (the path forward() takes: the fused
  // kernel, or, in the pooled cases, the key and value projections folded into the queries).
  for (const bool with_association : {true, false}) {
    const std::string label = name + (with_association ? "" : " (without ξ)");
    for (const Tensor& t : {stored_p, state, projection}) t.set_grad({});
    hopfield->zero_grad();
    auto r = hopfield->associate(stored_p, state, projection,
                                 nn::AssociateOptions()
                                     .stored_pattern_padding_mask(input("padding_mask"))
                                     .association_mask(input("association_mask"))
                                     .return_association(with_association));
    hgtest::check_close(r.output, fixture.tensor(name + ".out"), 1e-10, 1e-12, label + " out");
    results.push_back(r.output);
    if (with_association) {
      hgtest::check_close(r.association, fixture.tensor(name + ".association"), 1e-10, 1e-12, label + " association");
      CHECK_MESSAGE(r.update_steps == fixture.tensor(name + ".update_steps").to_vector<int64_t>(), label,
                    " update steps");
      results.push_back(r.association);
    }
    r.output.backward(input("grad_out"));
    auto check_grad = [&](const std::string& key, const Tensor& leaf) {
      hgtest::check_close(leaf.grad(), fixture.tensor("d" + name + ".out/" + name + "." + key), 1e-9, 1e-11,
                          label + " d/d" + key);
      results.push_back(leaf.grad());
    };
    if (single.defined()) {
      check_grad("input", single);
    } else {
      check_grad("stored", stored_p);
      check_grad("state", state);
      check_grad("projection", projection);
    }
    for (const auto& [pname, p] : params) check_grad("param." + pname, p);
  }
  return results;
}

}  // namespace

HG_BACKEND_TEST(hopfield_fused_self_matches_pytorch) { return check_fixture_case("fused_self", device); }
HG_BACKEND_TEST(hopfield_separate_iterated_matches_pytorch) { return check_fixture_case("separate_iterated", device); }
HG_BACKEND_TEST(hopfield_static_connected_matches_pytorch) { return check_fixture_case("static_connected", device); }
HG_BACKEND_TEST(hopfield_static_per_head_matches_pytorch) { return check_fixture_case("static_per_head", device); }
HG_BACKEND_TEST(hopfield_bias_pattern_matches_pytorch) { return check_fixture_case("bias_pattern", device); }
HG_BACKEND_TEST(hopfield_pooled_matches_pytorch) { return check_fixture_case("pooled", device); }
HG_BACKEND_TEST(hopfield_pooled_one_head_matches_pytorch) { return check_fixture_case("pooled_one_head", device); }

// ---- gradients for the main option combinations (float64 finite differences) ------------------------------

TEST_CASE("hopfield gradchecks: inputs (non-contiguous) and parameters for the main option combinations") {
  struct Case {
    const char* what;
    nn::HopfieldOptions options;
  };
  std::vector<Case> cases = {
      {"defaults (three LayerNorms, fused)", nn::HopfieldOptions(4).num_heads(2)},
      {"iterated, Hopfield-space norm", nn::HopfieldOptions(4)
                                            .num_heads(2)
                                            .update_steps_max(2)
                                            .update_steps_eps(1e-12)
                                            .normalize_hopfield_space(true)
                                            .normalize_hopfield_space_affine(true)},
      {"separate, connected, zero association, gelu",
       plain(4).stored_pattern_size(4).pattern_projection_size(4).pattern_projection_as_connected(true).add_zero_association(
           true).association_activation("gelu")},
      {"bias pattern, per-head beta, pattern_size", plain(4).num_heads(2).pattern_size(3).concat_bias_pattern(true).scaling(
                                                        {0.7, 1.4})},
      {"static stored patterns, top-K", plain(4).hidden_size(3).num_heads(2).stored_pattern_as_static(true).separation(
                                            nn::SeparationOptions(nn::SeparationKind::TopK).top_k(2))},
  };
  for (auto& c : cases) {
    CAPTURE(c.what);
    nn::Hopfield hopfield(c.options);
    hopfield->to(hg::kFloat64);
    randomize_parameters(*hopfield, 91, 0.6);
    const int64_t kw = c.options.stored_pattern_as_static() ? hopfield->head_dim() : 4;
    Tensor x = normal64({2, 4, 3}, 92), y = normal64({2, kw, 3}, 93), p = normal64({2, 4, 3}, 94);
    auto f = [&](const Tensors& t) {
      return hopfield(t[0].transpose(1, 2), t[1].transpose(1, 2), t[2].transpose(1, 2));
    };
    // Inputs are [B, feature, seq] and transposed inside: the layer sees non-contiguous patterns.
    hgtest::gradcheck(f, {y, x, p});
    check_parameter_gradients(*hopfield, [&] { return f({y, x, p}); });
  }
}

TEST_CASE("hopfield gradgradcheck: one and two updates") {
  for (int64_t steps : {0, 1}) {
    nn::Hopfield hopfield(nn::HopfieldOptions(4).num_heads(2).update_steps_max(steps).update_steps_eps(1e-12));
    hopfield->to(hg::kFloat64);
    randomize_parameters(*hopfield, 101, 0.6);
    hgtest::gradgradcheck([&](const Tensors& t) { return hopfield(t[0], t[1], t[0]); },
                          {normal64({1, 3, 4}, 102), normal64({1, 2, 4}, 103)});
  }
}

// ---- HopfieldPooling, HopfieldLayer, HopfieldEncoderLayer ---------------------------------------------------

HG_BACKEND_TEST(hopfield_pooling_is_hopfield_with_a_learned_query) {
  nn::HopfieldPooling pool(nn::HopfieldPoolingOptions(nn::HopfieldOptions(4).num_heads(2).output_size(3)).quantity(2));
  CHECK(pool->pooling_weights.sizes() == hg::Shape{1, 2, 4});
  pool->to(device, hg::kFloat64);
  randomize_parameters(*pool, 111);
  Tensor y = normal64({3, 5, 4}, 112).to(device);
  Tensor padding = hg::from_vector(std::vector<bool>(15, false), {3, 5}).to(device);
  Tensor z = pool(y, padding);
  CHECK(z.sizes() == hg::Shape{3, 6});
  Tensor query = pool->pooling_weights.expand({3, 2, 4});
  hgtest::check_close(z, pool->hopfield(y, query, y).reshape({3, 6}), 1e-12, 1e-14, "pooling");
  hg::sum(z).backward();
  CHECK(pool->pooling_weights.grad().defined());

  nn::HopfieldPooling fixed(nn::HopfieldPoolingOptions(nn::HopfieldOptions(4)).trainable(false));
  CHECK(!fixed->pooling_weights.requires_grad());
  return {z, pool->pooling_weights.grad()};
}

TEST_CASE("hopfield pooling and lookup layer: gradchecks") {
  nn::HopfieldPooling pool(nn::HopfieldPoolingOptions(nn::HopfieldOptions(3).update_steps_max(1)).quantity(2));
  pool->to(hg::kFloat64);
  randomize_parameters(*pool, 121);
  Tensor y = normal64({2, 4, 3}, 122);
  hgtest::gradcheck([&](const Tensors& t) { return pool(t[0]); }, {y});
  check_parameter_gradients(*pool, [&] { return pool(y); });

  nn::HopfieldLayer lookup(nn::HopfieldLayerOptions(plain(3).num_heads(1)).quantity(5).lookup_weights_as_separated(true));
  lookup->to(hg::kFloat64);
  randomize_parameters(*lookup, 123);
  Tensor x = normal64({2, 3, 3}, 124);
  hgtest::gradcheck([&](const Tensors& t) { return lookup(t[0]); }, {x});
  check_parameter_gradients(*lookup, [&] { return lookup(x); });
}

// Few queries against many stored patterns (HopfieldPooling): the layer folds W_K into the query and applies W_V
// after the weighted sum (nn/hopfield/hopfield.cpp, folding_pays). Same outputs and gradients as the projected
// association (asked for with return_association), a fully masked sample included; b_K, which cannot change a
// softmax, gets an exactly zero gradient, which shows the folded path ran.
HG_BACKEND_TEST(hopfield_pooling_folds_the_projections_into_the_query) {
  Tensors results;
  for (const int64_t heads : {1, 2}) {
    CAPTURE(heads);
    nn::HopfieldPooling pool(nn::HopfieldPoolingOptions(nn::HopfieldOptions(8).num_heads(heads)));
    pool->to(device, hg::kFloat64);
    randomize_parameters(*pool, 141);
    Tensor y = normal64({3, 20, 8}, 142).to(device).requires_grad_();
    std::vector<bool> padded(60, false);
    for (int64_t s = 15; s < 20; ++s) padded[static_cast<size_t>(s)] = true;  // sample 0: 15 patterns
    for (int64_t s = 40; s < 60; ++s) padded[static_cast<size_t>(s)] = true;  // sample 2: none
    Tensor padding = hg::from_vector(padded, {3, 20}).to(device);
    Tensor grad_out = normal64({3, 8}, 143).to(device);
    Tensors grads[2];
    for (const bool projected : {true, false}) {
      pool->zero_grad();
      y.set_grad({});
      // Asking for ξ takes the projected path.
      const auto request = nn::AssociateOptions().stored_pattern_padding_mask(padding).return_association(true);
      Tensor z = projected ? pool->associate(y, y, request).output.flatten(1) : pool(y, padding);
      z.backward(grad_out);
      Tensors& g = grads[projected ? 0 : 1];
      g.push_back(z);
      g.push_back(y.grad());
      for (const auto& [name, p] : pool->named_parameters()) g.push_back(p.grad());
    }
    for (size_t i = 0; i < grads[0].size(); ++i)
      hgtest::check_close(grads[1][i], grads[0][i], 1e-12, 1e-13, fmt::format("folded vs projected, item {}", i));
    const Tensor b_k = pool->hopfield->association_core->in_proj_bias.grad().narrow(0, 8, 8);
    CHECK(hg::amax(hg::abs(b_k), {0}).item<double>() == 0.0);
    results.insert(results.end(), grads[1].begin(), grads[1].end());
  }
  return results;
}

TEST_CASE("hopfield pooling, folded projections: gradchecks (two heads, separate widths, padding)") {
  nn::HopfieldPooling pool(nn::HopfieldPoolingOptions(
      nn::HopfieldOptions(4).stored_pattern_size(3).pattern_projection_size(5).hidden_size(3).pattern_size(2).num_heads(
          2)));
  pool->to(hg::kFloat64);
  randomize_parameters(*pool, 151);
  Tensor y = normal64({2, 12, 3}, 152), p = normal64({2, 12, 5}, 153);
  Tensor padding = hg::from_vector(std::vector<bool>(24, false), {2, 12});
  hgtest::gradcheck([&](const Tensors& t) { return pool->forward(t[0], t[1], padding, Tensor()); }, {y, p});
  check_parameter_gradients(*pool, [&] { return pool->forward(y, p, padding, Tensor()); });
  pool->zero_grad();
  hg::sum(pool->forward(y, p, padding, Tensor())).backward();
  const Tensor b_k = pool->hopfield->association_core->in_proj_bias.grad().narrow(0, 6, 6);
  CHECK(hg::amax(hg::abs(b_k), {0}).item<double>() == 0.0);  // the folded path ran
}

HG_BACKEND_TEST(hopfield_layer_looks_up_learned_patterns) {
  nn::HopfieldLayer lookup(nn::HopfieldLayerOptions(nn::HopfieldOptions(4).num_heads(2))
                               .quantity(6)
                               .lookup_weights_as_separated(true)
                               .lookup_targets_as_trainable(false));
  CHECK(lookup->lookup_weights.sizes() == hg::Shape{1, 6, 4});
  CHECK(lookup->target_weights.sizes() == hg::Shape{1, 6, 4});
  CHECK(lookup->lookup_weights.requires_grad());
  CHECK(!lookup->target_weights.requires_grad());
  lookup->to(device, hg::kFloat64);
  randomize_parameters(*lookup, 131);
  Tensor x = normal64({2, 3, 4}, 132).to(device);
  Tensor z = lookup(x);
  CHECK(z.sizes() == hg::Shape{2, 3, 4});
  Tensor stored = lookup->lookup_weights.expand({2, 6, 4}), targets = lookup->target_weights.expand({2, 6, 4});
  hgtest::check_close(z, lookup->hopfield(stored, x, targets), 1e-12, 1e-14, "lookup");
  // Without separation the stored patterns are their own projections.
  nn::HopfieldLayer shared(nn::HopfieldLayerOptions(nn::HopfieldOptions(4)).quantity(6));
  CHECK(!shared->target_weights.defined());
  CHECK(shared->named_parameters().front().first == "lookup_weights");
  CHECK(shared->named_parameters().size() == shared->hopfield->named_parameters().size() + 1);
  return {z};
}

HG_BACKEND_TEST(hopfield_encoder_layer_is_a_post_norm_block) {
  nn::HopfieldEncoderLayer block(
      nn::HopfieldEncoderLayerOptions(nn::HopfieldOptions(4).num_heads(2)).dim_feedforward(8).dropout(0.1));
  CHECK(block->options.activation() == "relu");
  CHECK(nn::HopfieldEncoderLayerOptions(nn::HopfieldOptions(4)).dim_feedforward() == 2048);
  block->to(device, hg::kFloat64);
  randomize_parameters(*block, 141);
  block->eval();
  Tensor x = normal64({2, 3, 4}, 142).to(device);
  Tensor mask = hg::from_vector(std::vector<bool>{false, true, false, false, false, false, true, false, false}, {3, 3})
                    .to(device);
  Tensor y = block(x, mask);
  Tensor h = block->norm_residual(x + block->hopfield_association(x, x, x, Tensor(), mask));
  Tensor expected = block->norm_output(h + block->linear_output(hg::relu(block->linear_residual(h))));
  hgtest::check_close(y, expected, 1e-12, 1e-14, "encoder block");
  // Training mode: dropout acts (and a fixed generator state is not needed to see it differ).
  block->train();
  CHECK(hg::max_abs_diff(block(x, mask), y) > 0.0);
  return {y};
}

// ---- separations and LwPF through the layer ---------------------------------------------------------------

TEST_CASE("hopfield: any separation through the layer; top-K with K = S equals softmax") {
  Tensor x = normal64({2, 3, 4}, 151), y = normal64({2, 5, 4}, 152);
  nn::Hopfield dense(plain(4).num_heads(2).update_steps_max(2).update_steps_eps(1e-12));
  nn::Hopfield top(nn::HopfieldOptions(dense->options).separation(nn::SeparationOptions(nn::SeparationKind::TopK).top_k(5)));
  for (auto* h : {&dense, &top}) {
    (*h)->to(hg::kFloat64);
    randomize_parameters(**h, 153);
  }
  hgtest::check_close(top(y, x, y), dense(y, x, y), 1e-12, 1e-14, "top-K, K = S");
  // Top-2 keeps two stored patterns per query in every update.
  top->options.separation(nn::SeparationOptions(nn::SeparationKind::TopK).top_k(2));
  nn::Hopfield top2(top->options);
  top2->to(hg::kFloat64);
  randomize_parameters(*top2, 153);
  auto r = top2->associate(y, x, y, nn::AssociateOptions().return_association(true));
  Tensor nonzero = hg::sum(hg::gt(r.association, 0.0).to(hg::kFloat64), {-1});
  CHECK(hg::max_abs_diff(nonzero, hg::full(nonzero.sizes(), 2.0, hg::kFloat64)) == 0.0);
}

TEST_CASE("hopfield: dropout once on the final association, training mode only") {
  nn::Hopfield hopfield(plain(4).num_heads(2).dropout(0.5).update_steps_max(1).update_steps_eps(1e-12));
  hopfield->to(hg::kFloat64);
  randomize_parameters(*hopfield, 161);
  Tensor x = normal64({2, 3, 4}, 162);
  hopfield->eval();
  auto clean = hopfield->associate(x, x, x, nn::AssociateOptions().return_association(true).return_projected_patterns(true));
  hopfield->train();
  hg::Generator gen(163), same(163);
  auto a = hopfield->associate(x, x, x, nn::AssociateOptions().generator(&gen).return_association(true));
  auto b = hopfield->associate(x, x, x, nn::AssociateOptions().generator(&same));
  hgtest::check_close(a.output, b.output, 0, 0, "same generator, same dropout");
  // The association (before dropout) is unchanged by training mode; the output uses the dropped-out copy:
  // out = W_O concat((mask ⊙ ξ / (1 − p)) V) for one Bernoulli mask — the updates themselves never see dropout.
  hgtest::check_close(a.association, clean.association, 1e-14, 0, "association before dropout");
  hg::Generator replay(163);
  Tensor w = hg::dropout(clean.association, 0.5, true, &replay);
  Tensor heads = hg::matmul(w, clean.projected_patterns).permute({0, 2, 1, 3}).reshape({2, 3, 4});
  hgtest::check_close(a.output, hopfield->association_core->out_proj(heads), 1e-12, 1e-14, "dropout once");
}

// ---- printing and errors ------------------------------------------------------------------------------------

TEST_CASE("hopfield: printing shows the sizes, options and submodules") {
  nn::Hopfield hopfield(nn::HopfieldOptions(8).num_heads(2).update_steps_max(std::nullopt).add_zero_association(true));
  std::string text = fmt::format("{}", hopfield);
  CHECK(text.find("Hopfield(input_size=8, hidden_size=4, output_size=8, pattern_size=4, num_heads=2, scaling=default, "
                  "update_steps_max=None") != std::string::npos);
  CHECK(text.find("add_zero_association") != std::string::npos);
  CHECK(text.find("(association_core): HopfieldCore(") != std::string::npos);
  CHECK(text.find("(out_proj): Linear(in_features=8, out_features=8, bias=true)") != std::string::npos);
  CHECK(text.find("(norm_state_pattern): LayerNorm") != std::string::npos);
  CHECK(text.find("(separation): Separation(softmax)") != std::string::npos);
  nn::HopfieldPooling pool(nn::HopfieldPoolingOptions(nn::HopfieldOptions(8)).quantity(3));
  CHECK(fmt::format("{}", pool).starts_with("HopfieldPooling(quantity=3, trainable=true)"));
  // Parameter names are hflayers' state_dict keys.
  std::vector<std::string> names;
  for (const auto& [name, p] : hopfield->named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"association_core.in_proj_weight", "association_core.in_proj_bias",
                                          "association_core.out_proj.weight", "association_core.out_proj.bias",
                                          "norm_stored_pattern.weight", "norm_stored_pattern.bias",
                                          "norm_state_pattern.weight", "norm_state_pattern.bias",
                                          "norm_pattern_projection.weight", "norm_pattern_projection.bias"});
  CHECK(hopfield->association_core->in_proj_weight.sizes() == hg::Shape{24, 8});
}

TEST_CASE("hopfield: initialisation N(0, 0.02²), zero biases, LayerNorms at identity") {
  nn::Hopfield hopfield(nn::HopfieldOptions(64).num_heads(4).concat_bias_pattern(true));
  const auto& core = *hopfield->association_core;
  Tensor w = core.in_proj_weight;
  const double mean = hg::mean(w).item<double>(), sd = hg::std(w).item<double>();
  CHECK(std::abs(mean) < 0.002);
  CHECK(sd == doctest::Approx(0.02).epsilon(0.05));
  CHECK(hg::std(core.out_proj->weight).item<double>() == doctest::Approx(0.02).epsilon(0.05));
  CHECK(hg::max_abs_diff(core.in_proj_bias, hg::zeros({3 * 64})) == 0.0);
  CHECK(core.bias_k.sizes() == hg::Shape{1, 1, 64});
  CHECK(hg::max_abs_diff(hopfield->norm_stored_pattern->weight, hg::ones({64})) == 0.0);
}

TEST_CASE("hopfield: errors name the layer, what it got and what it expected") {
  using doctest::Contains;
  CHECK_THROWS_WITH_AS(nn::Hopfield(nn::HopfieldOptions()), Contains("input_size must be a positive width"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::Hopfield(nn::HopfieldOptions(6).num_heads(4)),
                       Contains("input_size (6) must be divisible by num_heads (4)"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::Hopfield(nn::HopfieldOptions(4).num_heads(2).scaling({1.0, 2.0, 3.0})),
                       Contains("scaling needs one value or one per head (2), got 3"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::Hopfield(nn::HopfieldOptions(4).association_activation("swish")),
                       Contains("unknown association_activation 'swish'"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::Hopfield(nn::HopfieldOptions(4).normalize_hopfield_space_affine(true)),
                       Contains("normalize_hopfield_space_affine is set but normalize_hopfield_space is not"), hg::Error);
  CHECK_THROWS_WITH_AS(
      nn::Hopfield(nn::HopfieldOptions(4).stored_pattern_as_static(true).pattern_projection_as_connected(true)),
      Contains("which stored_pattern_as_static removes"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::Hopfield(nn::HopfieldOptions(4).stored_pattern_size(3).pattern_projection_as_connected(true)),
                       Contains("needs stored_pattern_size == pattern_projection_size, got 3 and 4"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::Hopfield(nn::HopfieldOptions(4).pattern_projection_as_static(true).concat_bias_pattern(true)),
                       Contains("concat_bias_pattern"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::Hopfield(nn::HopfieldOptions(4).update_steps_eps(0.0)),
                       Contains("update_steps_eps must be positive"), hg::Error);
  CHECK_THROWS_WITH_AS(nn::Hopfield(nn::HopfieldOptions(4).dropout(1.0)), Contains("dropout must be in [0, 1)"),
                       hg::Error);
  // A static pattern keeps its width (hidden_size or pattern_size), so a LayerNorm of another width on it could
  // never run: refused when the layer is built, naming the options.
  const auto static_state = nn::HopfieldOptions(8).hidden_size(4).state_pattern_as_static(true);
  CHECK_THROWS_WITH_AS(
      nn::HopfieldPooling(nn::HopfieldPoolingOptions(static_state)),
      Contains("state_pattern_as_static uses those patterns as they are, hidden_size = 4 features wide, but "
               "normalize_state_pattern normalises input_size = 8 features; set normalize_state_pattern(false)"),
      hg::Error);
  CHECK_THROWS_WITH_AS(nn::Hopfield(nn::HopfieldOptions(6).num_heads(2).stored_pattern_as_static(true)),
                       Contains("normalize_stored_pattern normalises stored_pattern_size = 6 features"), hg::Error);
  CHECK_THROWS_WITH_AS(
      nn::Hopfield(nn::HopfieldOptions(6).num_heads(2).pattern_projection_as_static(true).pattern_size(5)),
      Contains("pattern_projection_as_static uses those patterns as they are, pattern_size = 5 features wide"),
      hg::Error);
  {
    // Without the norm (or with matching widths) the same layers run.
    nn::HopfieldPooling pool(nn::HopfieldPoolingOptions(
        nn::HopfieldOptions(static_state).normalize_state_pattern(false).normalize_state_pattern_affine(false)));
    CHECK(pool(hg::randn({2, 5, 8})).sizes() == hg::Shape{2, 8});
    nn::Hopfield same(nn::HopfieldOptions(4).stored_pattern_as_static(true));
    CHECK(same(hg::randn({2, 3, 4})).sizes() == hg::Shape{2, 3, 4});
  }

  nn::Hopfield hopfield(nn::HopfieldOptions(4).num_heads(2));
  Tensor x = hg::zeros({2, 3, 4});
  CHECK_THROWS_WITH_AS(hopfield(hg::zeros({2, 3, 5})),
                       Contains("Hopfield(input_size=4, num_heads=2): expected widths stored 4, state 4, projection 4"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hopfield(hg::zeros({3, 3, 4}), x, hg::zeros({3, 3, 4})),
                       Contains("must share the batch size of the state patterns"), hg::Error);
  CHECK_THROWS_WITH_AS(hopfield(hg::zeros({3, 4}), x, x), Contains("expected stored, state and projection all 3-D"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hopfield(x.to(hg::kInt64)), Contains("expected floating patterns"), hg::Error);
  CHECK_THROWS_WITH_AS(hopfield(x, x, x, hg::zeros({2, 3})), Contains("expected a bool stored_pattern_padding_mask [2, 3]"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hopfield(x, x, x, Tensor(), hg::zeros({3, 4}, hg::kBool)),
                       Contains("expected a 2-D association_mask [3, 3] (L, S)"), hg::Error);
  CHECK_THROWS_WITH_AS(hopfield(x, x, x, Tensor(), hg::zeros({2, 3, 3}, hg::kBool)),
                       Contains("expected association_mask [3, 3] or [4, 3, 3] (B·num_heads, L, S)"), hg::Error);
  CHECK_THROWS_WITH_AS(hopfield(x, x, x, Tensor(), hg::zeros({3, 3}, hg::kInt64)), Contains("association_mask must be bool"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(nn::energy(hg::zeros({2, 3}), hg::zeros({4, 2}), 1.0),
                       Contains("energy: expected state [..., L, d] and stored [..., N, d] patterns of one width"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(nn::retrieve(hg::zeros({4, 3}), hg::zeros({2, 3}), -1.0), Contains("beta must be positive"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(nn::HopfieldEncoderLayer(nn::HopfieldEncoderLayerOptions(nn::HopfieldOptions(4).output_size(3))),
                       Contains("must map input_size to the same output_size"), hg::Error);
}

TEST_CASE("hopfield: LwPF forgetting inside the layer — D′ from the last update, weights sum below one") {
  auto forgetting = nn::ForgettingOptions(nn::ForgettingKind::PFU).threshold(nn::ForgettingThreshold::RowMedian);
  nn::Hopfield hopfield(plain(4).num_heads(2).update_steps_max(1).update_steps_eps(1e-12).separation(
      nn::SeparationOptions().forgetting(forgetting)));
  hopfield->to(hg::kFloat64);
  randomize_parameters(*hopfield, 171, 1.0);
  hopfield->eval();  // no threshold noise
  Tensor x = normal64({2, 3, 4}, 172), y = normal64({2, 6, 4}, 173);
  auto r = hopfield->associate(y, x, y, nn::AssociateOptions().return_association(true).return_projected_patterns(true));
  CHECK(r.update_steps == std::vector<int64_t>{1, 1});
  // By hand: the update uses the unmasked ξ₀ = softmax(D(s₀)); the output uses softmax(D(s₁)) ⊙ D′(s₁).
  const auto& core = *hopfield->association_core;
  auto heads = [](const Tensor& t) { return t.reshape({2, t.size(1), 2, 2}).permute({0, 2, 1, 3}); };
  Tensor q = heads(hg::linear(x, core.in_proj_weight.narrow(0, 0, 4), core.in_proj_bias.narrow(0, 0, 4)));
  Tensor k = heads(hg::linear(y, core.in_proj_weight.narrow(0, 4, 4), core.in_proj_bias.narrow(0, 4, 4)));
  const double beta = 1.0 / std::sqrt(2.0);
  auto d0 = nn::forget(hg::matmul(q * beta, k.transpose(-2, -1)), forgetting, false);
  Tensor q1 = hg::matmul(hg::softmax(d0.value, -1), k);
  auto d1 = nn::forget(hg::matmul(q1 * beta, k.transpose(-2, -1)), forgetting, false);
  Tensor weights = hg::softmax(d1.value, -1) * d1.keep;
  hgtest::check_close(r.association, weights, 1e-12, 1e-14, "LwPF association");
  CHECK(hg::amax(hg::sum(r.association, {-1}), {0, 1, 2}).item<double>() < 1.0);
  hgtest::check_close(r.output, core.out_proj(hg::matmul(weights, r.projected_patterns).permute({0, 2, 1, 3}).reshape({2, 3, 4})),
                      1e-12, 1e-14, "LwPF output");
}

TEST_CASE("hopfield: a feature separation updates the state with the kernel association of the keys") {
  nn::Hopfield hopfield(plain(4).num_heads(2).update_steps_max(2).update_steps_eps(1e-12).separation(
      nn::SeparationOptions(nn::SeparationKind::Linear)));
  hopfield->to(hg::kFloat64);
  randomize_parameters(*hopfield, 181);
  Tensor x = normal64({2, 3, 4}, 182), y = normal64({2, 5, 4}, 183);
  auto r = hopfield->associate(y, x, y, nn::AssociateOptions().return_association(true).return_projected_patterns(true));
  CHECK(r.update_steps == std::vector<int64_t>{2, 2});
  const auto& core = *hopfield->association_core;
  auto heads = [](const Tensor& t) { return t.reshape({2, t.size(1), 2, 2}).permute({0, 2, 1, 3}); };
  Tensor q = heads(hg::linear(x, core.in_proj_weight.narrow(0, 0, 4), core.in_proj_bias.narrow(0, 0, 4)));
  Tensor k = heads(hg::linear(y, core.in_proj_weight.narrow(0, 4, 4), core.in_proj_bias.narrow(0, 4, 4)));
  auto kernel = [](const Tensor& a, const Tensor& b, const Tensor& v) {
    return nn::kernel_attention(nn::elu_feature_map(a), nn::elu_feature_map(b), v);
  };
  Tensor q2 = kernel(kernel(q, k, k), k, k);
  Tensor expected = kernel(q2, k, r.projected_patterns);
  hgtest::check_close(r.output, core.out_proj(expected.permute({0, 2, 1, 3}).reshape({2, 3, 4})), 1e-12, 1e-14,
                      "linear association after two updates");
  CHECK(r.association.sizes() == hg::Shape{2, 2, 3, 5});
  hgtest::gradcheck([&](const Tensors& t) { return hopfield(t[0], t[1], t[0]); }, {y, x});
  CHECK_THROWS_WITH_AS(nn::Hopfield(plain(4).dropout(0.1).separation(nn::SeparationOptions(nn::SeparationKind::Linear))),
                       doctest::Contains("never forms"), hg::Error);
}
