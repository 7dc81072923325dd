#!/usr/bin/env python3
"""Golden fixtures for tests/test_separation.cpp: sparsemax and 1.5-entmax values and gradients, in plain PyTorch.

How to run (from the repository root; Debian's python3-torch, PyTorch 1.13 CPU):

    /usr/bin/python3 scripts/make_separation_fixtures.py          # (re)writes tests/fixtures/separation.txt
    /usr/bin/python3 scripts/make_separation_fixtures.py --check  # recomputes and compares with the checked-in file

PyTorch has neither op, so both are written here as torch.autograd.Functions following the reference algorithms
of spec C.6 (the entmax package's SparsemaxFunction and Entmax15Function): the sort-based forward and the
closed-form backward. As a check of those formulas, each gradient is also computed by autograd through the
forward algorithm itself (sort, cumsum, gather, clamp), and the two must agree to 1e-12.

The file format and naming conventions are those of scripts/make_fixtures.py (whose writer this reuses).

Fixtures:
  separation  sparsemax and entmax15 of x [4, 6] along dim 1 (one entry −inf; rows scaled from a wide support to
              a single winner) and of x3 [2, 5, 3] along dim 1; `grad_<y>` upstream gradients and
              d<y>/d<x> the gradient of Σ grad_<y> ⊙ y.
"""

import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_fixtures import generator, normal, write_or_check  # noqa: E402


# ---- the reference algorithms (spec C.6) ---------------------------------------------------------------
def sparsemax_forward(x, dim):
    """z = x − max; sort descending; k* = max{k : 1 + k z_(k) > Σ_{j≤k} z_(j)}; τ = (Σ_{j≤k*} z_(j) − 1)/k*."""
    z = x - x.max(dim=dim, keepdim=True).values
    z_sorted = z.sort(dim=dim, descending=True).values
    shape = [1] * x.dim()
    shape[dim] = -1
    k = torch.arange(1, x.size(dim) + 1, dtype=x.dtype).view(shape)
    cumulative = z_sorted.cumsum(dim)
    support_size = (1 + k * z_sorted > cumulative).sum(dim=dim, keepdim=True)
    tau = (cumulative.gather(dim, support_size - 1) - 1) / support_size.to(x.dtype)
    return torch.clamp(z - tau, min=0)


def entmax15_forward(x, dim):
    """z = (x − max)/2; sort descending; τ_k = mean_k − √max((1 − ss_k)/k, 0); s = #{k : τ_k ≤ z_(k)}."""
    z = (x - x.max(dim=dim, keepdim=True).values) / 2
    z_sorted = z.sort(dim=dim, descending=True).values
    shape = [1] * x.dim()
    shape[dim] = -1
    k = torch.arange(1, x.size(dim) + 1, dtype=x.dtype).view(shape)
    mean = z_sorted.cumsum(dim) / k
    mean_sq = (z_sorted ** 2).cumsum(dim) / k
    ss = k * (mean_sq - mean ** 2)
    delta = (1 - ss) / k
    tau = mean - torch.sqrt(torch.clamp(delta, min=0))
    support_size = (tau <= z_sorted).sum(dim=dim, keepdim=True)
    return torch.clamp(z - tau.gather(dim, support_size - 1), min=0) ** 2


class Sparsemax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        p = sparsemax_forward(x, dim)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, grad):
        # on the support S: g − mean_S(g); 0 off it
        (p,) = ctx.saved_tensors
        support = (p > 0).to(grad.dtype)
        mean = (grad * support).sum(ctx.dim, keepdim=True) / support.sum(ctx.dim, keepdim=True)
        return support * (grad - mean), None


class Entmax15(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        p = entmax15_forward(x, dim)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, grad):
        # with q = √p: g ⊙ q − (Σ g⊙q / Σ q) q
        (p,) = ctx.saved_tensors
        q = p.sqrt()
        gq = grad * q
        return gq - (gq.sum(ctx.dim, keepdim=True) / q.sum(ctx.dim, keepdim=True)) * q, None


def assert_clear_support(x, p, dim, op, what, margin=1e-3):
    """Away from kinks: every entry's z − τ (z the shifted scores, τ the threshold) is more than `margin` from 0,
    so a float32 rerun finds the same supports."""
    z = x - x.max(dim=dim, keepdim=True).values
    root = p if op == "sparsemax" else p.sqrt()  # p = [z − τ]₊ or [z/2 − τ]₊²
    if op == "entmax15":
        z = z / 2
    support = p > 0
    tau = torch.where(support, z - root, torch.zeros_like(z)).sum(dim, keepdim=True) / support.sum(dim, keepdim=True)
    gap = (z - tau).abs()[z.isfinite()].min().item()
    assert gap > margin, f"{what}: an entry lies {gap:.2e} from the support edge; pick another seed"


# ---- the fixture ---------------------------------------------------------------------------------------
def separation():
    gen = generator(4402)
    # Row scales from small (dense supports) to large (a single winner); one masked (−inf) entry.
    x = normal(gen, 4, 6) * torch.tensor([[0.2], [0.8], [2.0], [6.0]], dtype=torch.float64)
    x[1, 4] = float("-inf")
    x3 = normal(gen, 2, 5, 3)
    cases = {"x": (x, 1), "x3": (x3, 1)}

    tensors, grads = {}, {}
    for name, (value, dim) in cases.items():
        tensors[name] = value
        for op, function, forward in (("sparsemax", Sparsemax, sparsemax_forward),
                                      ("entmax15", Entmax15, entmax15_forward)):
            y_name = f"{op}_{name}"
            leaf = value.clone().requires_grad_(True)
            y = function.apply(leaf, dim)
            upstream = normal(gen, *y.shape)
            (grad,) = torch.autograd.grad(y, leaf, upstream)
            # The closed-form backward against autograd through the forward algorithm itself (with −inf replaced
            # by a finite value far below the support, where the algorithm's own gradient would be inf − inf).
            finite = torch.where(value.isinf(), value[value.isfinite()].min() - 50, value)
            leaf_again = finite.clone().requires_grad_(True)
            (grad_autograd,) = torch.autograd.grad(forward(leaf_again, dim), leaf_again, upstream)
            assert torch.allclose(grad, grad_autograd, rtol=1e-12, atol=1e-12), f"{y_name}: backward formula"
            assert_clear_support(value, y.detach(), dim, op, y_name)
            assert torch.allclose(y.sum(dim), torch.ones(()).to(y.dtype)), f"{y_name}: weights do not sum to 1"
            tensors[y_name] = y.detach()
            grads[f"grad_{y_name}"] = upstream
            grads[f"d{y_name}/d{name}"] = grad

    support_sizes = (tensors["sparsemax_x"] > 0).sum(1).tolist()
    return (f"sparsemax / entmax15 (spec C.6 algorithms) of x along dim 1 (sparsemax support sizes "
            f"{support_sizes}) and of x3 along dim 1; gradients of Σ grad_<y> ⊙ y", {**tensors, **grads})


FIXTURES = {"separation": separation}


def main():
    write_or_check(FIXTURES.items(), "scripts/make_separation_fixtures.py")


if __name__ == "__main__":
    main()
