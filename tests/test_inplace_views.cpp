// Autograd through in-place writes into views and into the tensors they view (autograd/view_history.h): every
// case is checked against the gradient of the same function written without in-place ops, and by finite
// differences, first and second order.
#include <memory>

#include <doctest/doctest.h>
#include <hopgrad/autograd/node.h>
#include <hopgrad/hopgrad.h>

#include "testing.h"

using hg::Tensor;

namespace {
Tensor vec(std::vector<double> v) {
  const auto n = static_cast<int64_t>(v.size());
  return hg::from_vector<double>(std::move(v), {n}, hg::kFloat64);
}
hg::TensorOptions f64() { return hg::TensorOptions(hg::kFloat64); }
}  // namespace

TEST_CASE("inplace views: copy_ into a slice of a buffer outside the graph puts the buffer in the graph") {
  Tensor x = vec({1, 2, 3}).requires_grad_();
  Tensor buf = hg::zeros({2, 3}, f64());
  buf.select(0, 1).copy_(x * 2.0);
  CHECK(buf.requires_grad());
  REQUIRE(buf.grad_fn());
  CHECK(std::string(buf.grad_fn()->name()) == "copy_slices");
  // Σ buf + Σ x: the buffer's row carries 2·x, so ∂/∂x = 3 (the buffer's share was silently dropped before).
  (hg::sum(buf) + hg::sum(x)).backward();
  hgtest::check_close(x.grad(), hg::full({3}, 3.0, f64()));

  // A buffer filled slice by slice, then used whole: the gradient of each source is its slice of the buffer's.
  auto fill_rows = [](const hg::Tensors& t) {
    Tensor out = hg::zeros({3, 4}, f64());
    out.narrow(0, 0, 2).copy_(t[0] * t[0]);
    out.select(0, 2).copy_(hg::exp(t[1]));
    return hg::matmul(out, out.t());
  };
  hgtest::gradcheck(fill_rows, {hg::randn({2, 4}, f64()).requires_grad_(), hg::randn({4}, f64()).requires_grad_()});
  hgtest::gradgradcheck(fill_rows,
                        {hg::randn({2, 4}, f64()).requires_grad_(), hg::randn({4}, f64()).requires_grad_()});
}

TEST_CASE("inplace views: an in-place op on a view of a computed tensor is followed through the base") {
  // Was refused; now as PyTorch: b = x·1; b[:, 1:3] *= y; the base's gradient splits at the view's elements.
  auto f = [](const hg::Tensors& t) {
    Tensor b = t[0] * 1.0;
    b.narrow(1, 1, 2).mul_(t[1]);
    b.select(0, 0).narrow(0, 0, 2).add_(t[1].select(0, 0), 2.0);  // a view of a view
    return b * b;
  };
  hgtest::gradcheck(f, {hg::randn({3, 4}, f64()).requires_grad_(), hg::randn({3, 2}, f64()).requires_grad_()});
  hgtest::gradgradcheck(f, {hg::randn({3, 4}, f64()).requires_grad_(), hg::randn({3, 2}, f64()).requires_grad_()});

  // The values by hand: b = [5·x0, x1, x2].
  Tensor z = vec({1, 2, 3}).requires_grad_();
  Tensor b = z * 1.0;
  b.narrow(0, 0, 1).mul_(5.0);
  hg::sum(b).backward();
  hgtest::check_close(z.grad(), vec({5, 1, 1}));
}

TEST_CASE("inplace views: a view taken before its base was written sees the write in its gradient") {
  // v = b[0:2]; b *= 3; Σ v: the view's values are 3·x, so is its gradient (it was x's before: silently wrong).
  Tensor y = vec({1, 2, 3}).requires_grad_();
  Tensor base = y * 1.0;
  Tensor v = base.narrow(0, 0, 2);
  base.mul_(3.0);
  hg::sum(v).backward();
  hgtest::check_close(y.grad(), vec({3, 3, 0}));

  // Overlapping views: a write through one changes what the other reads.
  Tensor x = vec({1, 2, 3, 4}).requires_grad_();
  Tensor b = x * 1.0;
  Tensor v1 = b.narrow(0, 0, 3), v2 = b.narrow(0, 1, 3);
  v1.mul_(2.0);
  hg::sum(v2 * v2).backward();  // v2 = [2·x1, 2·x2, x3]
  hgtest::check_close(x.grad(), vec({0, 16, 24, 8}));

  auto f = [](const hg::Tensors& t) {
    Tensor b = t[0] * 1.0;
    Tensor v = b.narrow(0, 1, 2).transpose(0, 1);  // taken before the writes below
    b.select(0, 1).mul_(t[0].select(0, 0));
    b.add_(t[0], 0.5);
    return v * v;
  };
  hgtest::gradcheck(f, {hg::randn({4, 3}, f64()).requires_grad_()});
  hgtest::gradgradcheck(f, {hg::randn({4, 3}, f64()).requires_grad_()});
}

TEST_CASE("inplace views: a view taken under NoGradGuard and written in place under grad mode") {
  Tensor z = vec({1, 2, 3}).requires_grad_();
  Tensor b = z * 1.0;
  Tensor v;
  {
    hg::NoGradGuard no_grad;
    v = b.narrow(0, 1, 2);
  }
  CHECK_FALSE(v.requires_grad());  // as PyTorch: a view made under NoGradGuard is not in the graph
  v.mul_(4.0);                     // but writing through it changes b, and b's history follows
  hg::sum(b).backward();
  hgtest::check_close(z.grad(), vec({1, 4, 4}));
}

TEST_CASE("inplace views: writes under NoGradGuard stay invisible, and a view of a parameter stays usable") {
  Tensor p = vec({1, 2, 3}).requires_grad_();
  Tensor v = p.narrow(0, 1, 2);
  {
    hg::NoGradGuard no_grad;
    p.mul_(2.0);  // an optimizer step
  }
  hg::sum(v * v).backward();  // v = [4, 6] now: ∂/∂p = 2·v on its elements
  hgtest::check_close(p.grad(), vec({0, 8, 12}));
}

TEST_CASE("inplace views: refused writes name the op and what to do instead") {
  Tensor p = vec({1, 2, 3}).requires_grad_();
  CHECK_THROWS_WITH_AS(p.narrow(0, 0, 1).mul_(2.0), doctest::Contains("mul_: float64[1] cpu is a view of a leaf tensor that requires grad"),
                       hg::Error);
  {
    hg::NoGradGuard no_grad;
    p.narrow(0, 0, 1).mul_(2.0);  // parameter updates under NoGradGuard are fine
  }
  hgtest::check_close(p, vec({2, 2, 3}));

  // An expanded view: several of its indices address one element of the base.
  Tensor x = vec({1, 2}).requires_grad_();
  Tensor b = hg::zeros({1, 2}, f64());
  CHECK_THROWS_WITH_AS(b.expand({3, 2}).copy_(x.expand({3, 2})), doctest::Contains("has elements that share memory"),
                       hg::Error);
  CHECK_FALSE(b.requires_grad());  // refused before anything was written or recorded
  CHECK(hg::sum(b).item<double>() == 0.0);
}

TEST_CASE("inplace views: x.mul_(x) is refused at backward, not differentiated with the overwritten x") {
  // mul_ keeps its operand for backward; here the operand is the tensor it overwrote (PyTorch refuses too).
  Tensor z = vec({1, 2, 3}).requires_grad_();
  std::weak_ptr<hg::TensorImpl> product;
  {
    Tensor b = z * 1.0;
    b.mul_(b);
    product = b.impl_ptr();
    CHECK_THROWS_WITH_AS(hg::sum(b).backward(), doctest::Contains("modified by an in-place operation"), hg::Error);
  }
  // The node saved the tensor whose history it became: kept without that history, or the pair keeps each
  // other alive (a leak of the tensor and its graph on every such call).
  CHECK(product.expired());
}

TEST_CASE("inplace views: a recurrence written into a buffer is differentiated and leaves no reference cycle") {
  std::weak_ptr<hg::TensorImpl> buffer;
  {
    Tensor w = vec({2.0}).requires_grad_();
    Tensor h = hg::zeros({4}, f64());
    h.narrow(0, 0, 1).fill_(1.0);
    // h[i] = h[i-1]·w, read through a clone (a read of h itself is overwritten by the next write, and refused)
    for (int64_t i = 1; i < 4; ++i) h.narrow(0, i, 1).copy_(h.narrow(0, i - 1, 1).clone() * w);
    buffer = h.impl_ptr();
    hg::sum(h).backward(hg::Tensor(), /*retain_graph=*/true);  // h = [1, w, w², w³]
    hgtest::check_close(w.grad(), vec({1 + 2 * 2 + 3 * 2 * 2}));
  }
  CHECK(buffer.expired());  // the nodes that read views of h do not keep h alive
}

TEST_CASE("inplace views: a leaf takes over a gradient that arrives as a view of a temporary, without a copy") {
  // The view's base holds the storage too (TensorImpl::view_base); that must not count as another owner, or
  // every such gradient (a reshape's, a linear layer's weight gradient) is copied into .grad.
  Tensor x = hg::randn({2, 3}, f64()).requires_grad_();
  const hg::Storage* arrived = nullptr;
  x.register_hook([&arrived](const Tensor& g) {
    arrived = g.storage().get();
    return Tensor();
  });
  (x.reshape({6}) * hg::randn({6}, f64())).sum().backward();
  REQUIRE(arrived != nullptr);
  CHECK(x.grad().storage().get() == arrived);
}

TEST_CASE("inplace views: a write under NoGradGuard into a stale view leaves it stale") {
  // v1 is stale after the write through v2; the guarded write must not mark v1's old history as current.
  Tensor x = vec({0.3, -1.2, 0.7, 1.5, -0.4, 0.9}).requires_grad_();
  Tensor y = vec({1.1, -0.6, 0.8, 0.5}).requires_grad_();
  Tensor b = x * 1.0;
  Tensor v1 = b.narrow(0, 0, 4), v2 = b.narrow(0, 2, 4);
  v2.mul_(y);
  {
    hg::NoGradGuard no_grad;
    v1.mul_(1.0);
  }
  (v1 * v1).sum().backward();  // v1 = [x0, x1, x2·y0, x3·y1]
  hgtest::check_close(x.grad(), vec({0.6, -2.4, 2 * 0.7 * 1.1 * 1.1, 2 * 1.5 * 0.6 * 0.6, 0, 0}));
  hgtest::check_close(y.grad(), vec({2 * 0.7 * 0.7 * 1.1, 2 * 1.5 * 1.5 * -0.6, 0, 0}));
}

TEST_CASE("inplace views: retain_grad keeps the gradient of the tensor's current value") {
  // As PyTorch: after an in-place op, or a write through the base, .grad() is that of the value now.
  Tensor x = vec({0.6, -2.4, 1.4, 0.5}).requires_grad_();
  Tensor b = x * 1.0;
  Tensor v = b.narrow(0, 0, 3);
  v.retain_grad();
  b.mul_(2.0);
  (v * v).sum().backward();
  REQUIRE(v.grad().defined());
  hgtest::check_close(v.grad(), vec({2.4, -9.6, 5.6}));  // 2·v, v = 2·x

  Tensor c = x * 1.0;
  c.retain_grad();
  c.mul_(3.0);
  (c * c).sum().backward();
  hgtest::check_close(c.grad(), vec({3.6, -14.4, 8.4, 3.0}));  // 2·c, c = 3·x, not the gradient before mul_
}

TEST_CASE("inplace views: a write through an as_strided view whose elements are distinct but interleaved") {
  // Offsets 0, 3, 2, 5, 4, 7: no element twice, though the strides interleave.
  auto f = [](const hg::Tensors& t) {
    Tensor b = t[0] * 1.0;
    b.as_strided({3, 2}, {2, 3}, b.offset()).mul_(t[1]);
    return b * b;
  };
  hgtest::gradcheck(f, {hg::randn({8}, f64()).requires_grad_(), hg::randn({3, 2}, f64()).requires_grad_()});
  // Offsets 0, 1, 1, 2: refused.
  Tensor x = hg::randn({4}, f64()).requires_grad_();
  Tensor b = x * 1.0;
  CHECK_THROWS_WITH_AS(b.as_strided({2, 2}, {1, 1}, 0).mul_(2.0), doctest::Contains("has elements that share memory"),
                       hg::Error);
  // fill_ may write one value through aliases, but autograd cannot split a gradient among them.
  CHECK_THROWS_WITH_AS(b.as_strided({2, 2}, {1, 1}, 0).fill_(2.0),
                       doctest::Contains("a view in which several indices address one element"), hg::Error);
}

TEST_CASE("inplace views: a view taken under NoGradGuard whose base was written since is refused in grad mode") {
  Tensor w = vec({1.3, -0.2, 1.7, 0.4}).requires_grad_();
  Tensor v;
  {
    hg::NoGradGuard no_grad;
    v = w.narrow(0, 0, 3);
  }
  CHECK_FALSE((v * v).requires_grad());  // outside the graph, as PyTorch
  {
    hg::NoGradGuard no_grad;
    w.add_(1.0);  // an optimizer step
  }
  // Ambiguous from now on: follow the write into w's graph, or not? PyTorch refuses too.
  CHECK_THROWS_WITH_AS(v * v, doctest::Contains("taken under hg::NoGradGuard"), hg::Error);
  CHECK(hg::to_string(v).find("tensor(") == 0);  // printing it does not throw
  {
    hg::NoGradGuard no_grad;
    CHECK(hg::sum(v * v).item<double>() > 0);  // nor does using it under the guard
  }
}

TEST_CASE("inplace views: a view node keeps nothing, so a cached w.t() serves every backward") {
  Tensor w = hg::randn({2, 3}, f64()).requires_grad_();
  Tensor c = w.t();
  (c * 2.0).sum().backward();
  (c * 3.0).sum().backward();  // the transpose node ran in the first backward already
  hgtest::check_close(w.grad(), hg::full({2, 3}, 5.0, f64()));
}

TEST_CASE("inplace views: add_, mul_ and copy_ into a tensor whose elements share memory are refused, fill_ is not") {
  // hg::grad of a sum gives the seed expanded (stride 0), as PyTorch: scaling it in place would scale the one
  // stored element once per alias (0.5⁴ here), silently.
  Tensor w = vec({1, 2, 3, 4}).requires_grad_();
  Tensor g = hg::grad({w.sum()}, {w})[0];
  REQUIRE(g.stride(0) == 0);
  CHECK_THROWS_WITH_AS(g.mul_(0.5), doctest::Contains("mul_: float64[4] cpu (sizes [4], strides [0]) has elements that share memory"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(g.add_(vec({1, 1, 1, 1})), doctest::Contains("add_:"), hg::Error);
  CHECK_THROWS_WITH_AS(g.copy_(vec({1, 2, 3, 4})), doctest::Contains("copy_:"), hg::Error);
  hgtest::check_close(g, hg::ones({4}, f64()));  // refused before anything was written
  hgtest::check_close(g * 0.5, hg::full({4}, 0.5, f64()));  // out of place is fine
  Tensor a = hg::zeros({1}, f64());
  a.expand({4}).fill_(2.0);  // one value for every alias: well defined, allowed (as PyTorch)
  CHECK(a.item<double>() == 2.0);
  // A hook that scales the gradient in place meets the same refusal, where it would have scaled it 3³ times.
  Tensor x = vec({1, 2, 3}).requires_grad_();
  Tensor y = x * 2.0;
  y.register_hook([](const Tensor& gr) {
    gr.mul_(3.0);
    return Tensor();
  });
  CHECK_THROWS_WITH_AS(y.sum().backward(), doctest::Contains("has elements that share memory"), hg::Error);
}
