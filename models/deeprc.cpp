// DeepRC (see deeprc.h).
#include <hopgrad/models/deeprc.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>
#include <vector>

#include <hopgrad/autograd/grad_mode.h>
#include <hopgrad/nn/init.h>
#include <hopgrad/nn/layers/activation.h>
#include <hopgrad/nn/layers/linear.h>
#include <hopgrad/ops/ops.h>

namespace hg::models {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// DeepRC's initialisation of every weight (spec E.3): N(0, 1 / (fan_out · fan_in)), i.e. for the CNN
// std = (32 · 23 · 9)^{-1/2}; biases keep the layers' default initialisation.
void snn_normal_(const Tensor& weight) {
  double fans = 1.0;
  for (int64_t size : weight.shape()) fans *= static_cast<double>(size);
  nn::init::normal_(weight, 0.0, 1.0 / std::sqrt(fans));
}

// [Linear(in → units) → SELU] × hidden_layers → Linear(→ outputs).
nn::Sequential snn(int64_t in, int64_t hidden_layers, int64_t units, int64_t outputs) {
  nn::Sequential net;
  for (int64_t i = 0; i < hidden_layers; ++i) {
    net->push_back(nn::Linear(i == 0 ? in : units, units));
    net->push_back(nn::SELU());
  }
  net->push_back(nn::Linear(hidden_layers == 0 ? in : units, outputs));
  return net;
}

}  // namespace

DeepRCImpl::DeepRCImpl(const DeepRCOptions& options_) : Module("DeepRC"), options(options_) {
  const DeepRCOptions& o = options;
  HG_CHECK(o.in_features() > 0 && o.kernel_size() > 0 && o.kernels() > 0,
           "DeepRC: in_features, kernel_size and kernels must be positive, got {}, {}, {}", o.in_features(),
           o.kernel_size(), o.kernels());
  HG_CHECK(o.attention_layers() >= 0 && o.attention_units() > 0,
           "DeepRC: expected attention_layers >= 0 and attention_units > 0, got {} and {}", o.attention_layers(),
           o.attention_units());
  HG_CHECK(o.output_units() > 0 && o.outputs() > 0, "DeepRC: output_units and outputs must be positive, got {}, {}",
           o.output_units(), o.outputs());
  HG_CHECK(o.sequence_reduction() > 0 && o.sequence_reduction() <= 1,
           "DeepRC: sequence_reduction is the share of sequences kept, in (0, 1], got {}", o.sequence_reduction());
  HG_CHECK(o.reduction_chunk() > 0, "DeepRC: reduction_chunk must be positive, got {}", o.reduction_chunk());

  // h: one Conv1d over positions (no padding: every output position sees a full k-mer window).
  embedding = register_module("embedding", nn::Conv1d(o.in_features(), o.kernels(), o.kernel_size()));
  // f: the SNN attention network; its last Linear is the learned query ξ.
  attention = register_module("attention", snn(o.kernels(), o.attention_layers(), o.attention_units(), 1));
  // DeepRC applies the forgetting unit to one bag's logits at a time (spec B.3), so its "global" median is the
  // bag's median: here all bags go at once as rows [B, 1, N], and the row median is the same thing.
  nn::SeparationOptions separation_options = o.separation();
  if (separation_options.forgetting() &&
      separation_options.forgetting()->threshold() == nn::ForgettingThreshold::GlobalMedian) {
    nn::ForgettingOptions unit = *separation_options.forgetting();
    separation_options.forgetting(unit.threshold(nn::ForgettingThreshold::RowMedian));
  }
  separation = register_module("separation", nn::Separation(separation_options));
  HG_CHECK(separation->forms_weights(),
           "DeepRC: the attention pooling needs explicit weights over a bag's sequences; separation '{}' does not "
           "form them (use softmax, softmax1, sparsemax, entmax15, entmax, topk, random or poly)",
           nn::to_string(o.separation().kind()));
  // o: n_layers ≤ 1 is a single Linear, n_layers = k is (k − 1) × [Linear → SELU] then Linear.
  output = register_module("output",
                           snn(o.kernels(), std::max<int64_t>(o.output_layers() - 1, 0), o.output_units(),
                               o.outputs()));
  reset_parameters();
}

void DeepRCImpl::reset_parameters() {
  embedding->reset_parameters();
  NoGradGuard no_grad;
  snn_normal_(embedding->weight);
  for (const nn::Sequential& net : {attention, output})
    for (size_t i = 0; i < net->size(); ++i)
      if (auto linear = std::dynamic_pointer_cast<nn::LinearImpl>(net->ptr(i))) {
        linear->reset_parameters();
        snn_normal_(linear->weight);
      }
}

void DeepRCImpl::check_input(const Tensor& instances, const Tensor& padding_mask) const {
  HG_CHECK(instances.defined() && instances.dim() == 4 && instances.size(3) == options.in_features() &&
               is_floating(instances.dtype()),
           "DeepRC: expected instances [bags, sequences, length, {}] of a floating dtype, got {}",
           options.in_features(), instances.defined() ? instances.desc() : "undefined");
  if (!padding_mask.defined()) return;
  HG_CHECK(padding_mask.dtype() == kBool && padding_mask.dim() == 2 && padding_mask.size(0) == instances.size(0) &&
               padding_mask.size(1) == instances.size(1),
           "DeepRC: expected padding_mask bool [{}, {}] (true = padding) for instances {}, got {}",
           instances.size(0), instances.size(1), instances.desc(), padding_mask.desc());
  HG_CHECK(padding_mask.device() == instances.device(),
           "DeepRC: padding_mask is on {} but instances are on {}", padding_mask.device(), instances.device());
}

// z = max_t SELU(Conv1d(x))_t
Tensor DeepRCImpl::embed(const Tensor& sequences) {
  HG_CHECK(sequences.defined() && sequences.dim() == 3 && sequences.size(2) == options.in_features(),
           "DeepRC::embed: expected sequences [n, length, {}], got {}", options.in_features(),
           sequences.defined() ? sequences.desc() : "undefined");
  Tensor x = sequences.transpose(1, 2);  // [n, features, length]: positions are the convolved axis
  const int64_t short_by = options.kernel_size() - x.size(2);
  if (short_by > 0) x = pad(x, {0, short_by});
  return amax(selu(embedding(x)), {2});
}

// u = f(z)
Tensor DeepRCImpl::attention_logits(const Tensor& embeddings) { return attention(embeddings).squeeze(-1); }

Tensor DeepRCImpl::score_sequences(const Tensor& instances, const Tensor& padding_mask) {
  check_input(instances, padding_mask);
  NoGradGuard no_grad;
  const int64_t bags = instances.size(0), n = instances.size(1), total = bags * n;
  const Tensor flat = instances.reshape({total, instances.size(2), instances.size(3)});
  Tensors chunks;
  for (int64_t begin = 0; begin < total; begin += options.reduction_chunk()) {
    const int64_t size = std::min(options.reduction_chunk(), total - begin);
    chunks.push_back(attention_logits(embed(flat.narrow(0, begin, size))));
  }
  Tensor scores = (chunks.empty() ? zeros({0}, TensorOptions(instances.dtype()).device(instances.device()))
                                  : cat(chunks))
                      .reshape({bags, n});
  return padding_mask.defined() ? masked_fill(scores, padding_mask, -kInf) : scores;
}

ReducedBags DeepRCImpl::reduce(const Tensor& instances, const Tensor& padding_mask) {
  const Tensor scores = score_sequences(instances, padding_mask);
  const int64_t bags = instances.size(0), n = instances.size(1);
  const Device device = instances.device();
  Tensor index, mask, rows;
  {
    NoGradGuard no_grad;
    // Per bag: keep ⌊fraction · n_b⌋ of its n_b real sequences, at least one (none of an empty bag).
    std::vector<int64_t> real(static_cast<size_t>(bags), n);
    if (padding_mask.defined())
      real = (n - sum(padding_mask.to(kInt64), {1})).to(kCPU).contiguous().to_vector<int64_t>();
    std::vector<int64_t> keep(static_cast<size_t>(bags));
    for (size_t b = 0; b < keep.size(); ++b)
      keep[b] = std::min(real[b], std::max<int64_t>(1, static_cast<int64_t>(std::floor(
                                                           options.sequence_reduction() * real[b] + 1e-9))));
    const int64_t width =
        std::max<int64_t>(1, std::min(n, bags == 0 ? 0 : *std::max_element(keep.begin(), keep.end())));
    // The top `width` of every bag by logit (padding is −inf, so real sequences come first), then each bag's
    // slots past its own count become padding.
    index = std::get<1>(topk(scores, width, 1));
    const Tensor counts = from_vector(keep, {bags, 1}, kInt64).to(device);
    mask = ge(arange(static_cast<double>(width), TensorOptions(kInt64).device(device)).unsqueeze(0), counts);
    rows = mul(arange(static_cast<double>(bags), TensorOptions(kInt64).device(device)), n).unsqueeze(1);
  }
  // The gather itself is differentiable: gradients reach the kept sequences' inputs.
  const Tensor flat = instances.reshape({bags * n, instances.size(2), instances.size(3)});
  Tensor gathered = index_select(flat, 0, add(index, rows).reshape({-1}))
                        .reshape({bags, index.size(1), instances.size(2), instances.size(3)});
  return {gathered, mask, index};
}

// w = sep(f(z)) over each bag's sequences; r = Σ_i w_i z_i; ŷ = o(r)
DeepRCOutput DeepRCImpl::pool(const Tensor& instances, const Tensor& padding_mask) {
  const int64_t bags = instances.size(0), n = instances.size(1);
  const Tensor z =
      embed(instances.reshape({bags * n, instances.size(2), instances.size(3)})).reshape({bags, n, options.kernels()});
  const Tensor u = attention_logits(z);  // [B, N]
  // One query per bag: scores [B, 1, N]; the separation (and LwPF's per-row median) runs over the bag.
  nn::Association association = separation->weights(u.unsqueeze(1), padding_mask.unsqueeze(1));
  Tensor w = association.weights;
  if (association.keep.defined()) w = mul(w, association.keep);
  const Tensor r = matmul(w, z).squeeze(1);  // [B, kernels]
  return {output(r), w.squeeze(1), masked_fill(u, padding_mask, -kInf), logical_not(padding_mask)};
}

DeepRCOutput DeepRCImpl::forward(const Tensor& instances, const Tensor& padding_mask_in) {
  check_input(instances, padding_mask_in);
  const int64_t bags = instances.size(0), n = instances.size(1);
  const Tensor padding_mask =
      padding_mask_in.defined() ? padding_mask_in : zeros({bags, n}, TensorOptions(kBool).device(instances.device()));
  if (options.sequence_reduction() >= 1.0) return pool(instances, padding_mask);

  const ReducedBags reduced = reduce(instances, padding_mask);
  DeepRCOutput out = pool(reduced.instances, reduced.padding_mask);
  // Back to the input's sequence positions: kept slots are distinct indices, padded slots carry weight 0, so a
  // scatter-add places each weight where its sequence was (and stays differentiable).
  const Tensor zero = zeros({bags, n}, TensorOptions(out.attention.dtype()).device(instances.device()));
  const Tensor real = logical_not(reduced.padding_mask);
  Tensor kept = gt(scatter_add(zero, 1, reduced.index, real.to(zero.dtype())), 0.0);
  Tensor logits = scatter_add(zero, 1, reduced.index, masked_fill(out.attention_logits, reduced.padding_mask, 0.0));
  return {out.logits, scatter_add(zero, 1, reduced.index, out.attention),
          masked_fill(logits, logical_not(kept), -kInf), kept};
}

void DeepRCImpl::pretty_print(std::ostream& stream) const {
  const DeepRCOptions& o = options;
  stream << fmt::format("DeepRC(in_features={}, kernels={}, kernel_size={}, attention={}x{}, output_layers={}, "
                        "outputs={}, sequence_reduction={}, separation={}{})",
                        o.in_features(), o.kernels(), o.kernel_size(), o.attention_layers(), o.attention_units(),
                        o.output_layers(), o.outputs(), o.sequence_reduction(), nn::to_string(o.separation().kind()),
                        o.separation().forgetting() ? " + forgetting" : "");
}

}  // namespace hg::models
