// Tensor member spellings of common ops (t.exp(), t.max(), ...), forwarding to the free functions.
#include <hopgrad/ops/ops.h>

namespace hg {

Tensor Tensor::operator-() const { return neg(*this); }
Tensor Tensor::exp() const { return hg::exp(*this); }
Tensor Tensor::log() const { return hg::log(*this); }
Tensor Tensor::sqrt() const { return hg::sqrt(*this); }
Tensor Tensor::abs() const { return hg::abs(*this); }
Tensor Tensor::square() const { return hg::square(*this); }
Tensor Tensor::relu() const { return hg::relu(*this); }
Tensor Tensor::sigmoid() const { return hg::sigmoid(*this); }
Tensor Tensor::tanh() const { return hg::tanh(*this); }
Tensor Tensor::pow(double exponent) const { return hg::pow(*this, exponent); }
Tensor Tensor::softmax(int64_t dim) const { return hg::softmax(*this, dim); }
Tensor Tensor::log_softmax(int64_t dim) const { return hg::log_softmax(*this, dim); }
Tensor Tensor::max() const { return hg::max(*this); }
Tensor Tensor::min() const { return hg::min(*this); }
Tensor Tensor::argmax(int64_t dim, bool keepdim) const { return hg::argmax(*this, dim, keepdim); }

}  // namespace hg
