#!/usr/bin/env python3
"""Golden fixtures for tests/test_golden.cpp: composite expressions and their gradients, computed with PyTorch.

How to run (from the repository root; Debian's python3-torch, PyTorch 1.13 CPU):

    /usr/bin/python3 scripts/make_fixtures.py          # (re)writes tests/fixtures/<name>.txt
    /usr/bin/python3 scripts/make_fixtures.py --check  # recomputes and compares with the checked-in files

The C++ test reads the files, rebuilds each computation with hopgrad ops from the same inputs and compares the
forward values and every gradient; Python is not needed at test time. Everything here is float64 on one CPU
thread with fixed seeds, so a rerun reproduces the files (--check allows a 1e-12 relative difference, for BLAS
builds that sum in another order).

File format (plain text, readable without Python):
  - lines starting with '#' are comments (each file starts with what it holds and how it was made);
  - a tensor is a header line `tensor <name> <dtype> <rank> <size_0> ... <size_rank-1>` followed by its
    numel() values in row-major order, whitespace-separated (one line per row of the last dim, for reading);
  - dtype is float64 (shortest decimal that round-trips: parsing gives the exact same double), int64, or
    bool (0/1);
  - names: inputs and hyperparameters are plain (`x`, `lr`; hyperparameters are 0-dim tensors), forward
    results are plain too (`loss`), `grad_<y>` is the upstream gradient fed into output y, and `d<y>/d<x>` is
    the gradient of Σ grad_<y> ⊙ y (of y itself when y is a scalar) with respect to input x.

Fixtures:
  mlp_training_step      linear → relu → linear → cross_entropy; gradients of x and every weight and bias, and
                         every parameter after one torch.optim.SGD step (lr 0.1): `sgd_<param>`.
  attention              multi-head scaled dot-product attention softmax(QKᵀ/√d)·V with a boolean mask filled
                         with −inf; q/k/v [B, T|S, H·d] are reshaped to heads and permuted; gradients of q, k, v.
  layer_norm_chain       layer_norm(last dim, affine) → gelu (exact) → linear → layer_norm(last two dims,
                         affine) → sum of squares; gradients of every input.
  deeprc_chain           DeepRC-like head: conv1d(23→8, k=5) over one-hot sequences → selu → max over positions
                         → linear → logits; `probs` = sigmoid(logits) is the prediction and the loss is
                         binary_cross_entropy_with_logits(logits, target, pos_weight) (the loss takes the logits,
                         as DeepRC trains); gradients of every input.
  hopfield_retrieval     three updates ξ ← X·softmax(β·Xᵀ·ξ) (softmax over the stored patterns, β = 1/√d) with
                         stored patterns X [d, N] and state patterns ξ [d, M] as columns; gradients of X and ξ.
  classification_losses  nll_loss(log_softmax) with ignore_index, cross_entropy with ignore_index and label
                         smoothing (mean over [N, C], and sum over [N, C, L] with targets [N, L]); each loss's
                         gradient of the logits, and nll with reduction none.
  reductions_chain       cumsum → logsumexp and → 2-norm; unbiased var; topk values and indices; lower median
                         (even length) and its indices; gradient of x for each result.

Inputs are drawn so that float32 reruns take the same branches: relu inputs, max/topk/median candidates and
mask patterns are kept away from kinks and ties (asserted below with a margin).
"""

import argparse
import math
import pathlib
import sys

import torch
import torch.nn.functional as F

FIXTURE_DIR = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
MARGIN = 1e-3  # smallest allowed distance from a kink or a tie, far above float32 rounding of these values
DTYPE_NAMES = {torch.float64: "float64", torch.int64: "int64", torch.bool: "bool"}


# ---- helpers -------------------------------------------------------------------------------------------
def generator(seed):
    return torch.Generator().manual_seed(seed)


def uniform(gen, *shape, lo=-1.0, hi=1.0):
    return torch.rand(*shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo


def normal(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def scalar(value):
    return torch.tensor(value, dtype=torch.int64 if isinstance(value, int) else torch.float64)


def leaves(**tensors):
    return {name: t.clone().requires_grad_(True) for name, t in tensors.items()}


def gradients(output, inputs, upstream=None, prefix=None):
    """{'d<prefix>/d<name>': ∂(Σ upstream ⊙ output)/∂input} for every input (the graph is kept for more)."""
    grads = torch.autograd.grad(output, list(inputs.values()), grad_outputs=upstream, retain_graph=True)
    return {f"d{prefix}/d{name}": g for name, g in zip(inputs, grads)}


def assert_away_from(values, point, what):
    gap = (values - point).abs().min().item()
    assert gap > MARGIN, f"{what}: a value lies {gap:.2e} from {point}; pick another seed"


def assert_no_ties(values, dim, what, k=1):
    """The k-th and (k+1)-th largest along dim (or all neighbours when k is None) differ by more than MARGIN."""
    ordered = values.sort(dim=dim, descending=True).values
    if k is None:
        gap = (ordered.narrow(dim, 0, ordered.size(dim) - 1) - ordered.narrow(dim, 1, ordered.size(dim) - 1))
    else:
        gap = ordered.narrow(dim, k - 1, 1) - ordered.narrow(dim, k, 1)
    assert gap.min().item() > MARGIN, f"{what}: a near tie ({gap.min().item():.2e}); pick another seed"


def detached(tensors):
    return {name: t.detach() for name, t in tensors.items()}


# ---- the fixtures --------------------------------------------------------------------------------------
def mlp_training_step():
    gen = generator(101)
    n, d_in, d_hidden, classes = 6, 5, 7, 4
    x = normal(gen, n, d_in)
    params = {  # PyTorch's nn.Linear initialisation range, U(-1/√fan_in, 1/√fan_in)
        "W1": uniform(gen, d_hidden, d_in, lo=-d_in ** -0.5, hi=d_in ** -0.5),
        "b1": uniform(gen, d_hidden, lo=-d_in ** -0.5, hi=d_in ** -0.5),
        "W2": uniform(gen, classes, d_hidden, lo=-d_hidden ** -0.5, hi=d_hidden ** -0.5),
        "b2": uniform(gen, classes, lo=-d_hidden ** -0.5, hi=d_hidden ** -0.5),
    }
    target = torch.randint(0, classes, (n,), generator=gen)
    lr = 0.1

    inputs = leaves(x=x, **params)
    hidden = F.linear(inputs["x"], inputs["W1"], inputs["b1"])
    assert_away_from(hidden, 0.0, "relu input")
    logits = F.linear(F.relu(hidden), inputs["W2"], inputs["b2"])
    loss = F.cross_entropy(logits, target)
    grads = gradients(loss, inputs, prefix="loss")

    for name in params:
        inputs[name].grad = grads[f"dloss/d{name}"].clone()
    torch.optim.SGD([inputs[name] for name in params], lr=lr).step()
    updated = {f"sgd_{name}": inputs[name].detach().clone() for name in params}

    return ("one MLP training step: logits = linear(relu(linear(x, W1, b1)), W2, b2); "
            "loss = cross_entropy(logits, target); sgd_<p> = p after torch.optim.SGD(lr).step()",
            {"x": x, **params, "target": target, "lr": scalar(lr),
             "logits": logits.detach(), "loss": loss.detach(), **grads, **updated})


def attention():
    gen = generator(202)
    batch, queries, keys, heads, head_dim = 2, 3, 4, 2, 3
    model_dim = heads * head_dim
    q, k, v = normal(gen, batch, queries, model_dim), normal(gen, batch, keys, model_dim), normal(
        gen, batch, keys, model_dim)
    # mask [B, 1, T, S] (true = masked), broadcast over heads; every query keeps at least one key
    mask = torch.rand(batch, 1, queries, keys, generator=gen) < 0.4
    keep = torch.randint(0, keys, (batch, 1, queries, 1), generator=gen)
    mask.scatter_(3, keep, False)
    assert mask.any() and not mask.all(dim=3).any()
    grad_out = normal(gen, batch, queries, model_dim)

    inputs = leaves(q=q, k=k, v=v)

    def split_heads(t):  # [B, L, H·d] → [B, H, L, d]
        return t.reshape(t.shape[0], t.shape[1], heads, head_dim).permute(0, 2, 1, 3)

    scores = split_heads(inputs["q"]) @ split_heads(inputs["k"]).transpose(-2, -1) / math.sqrt(head_dim)
    attn = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
    out = (attn @ split_heads(inputs["v"])).permute(0, 2, 1, 3).reshape(batch, queries, model_dim)
    grads = gradients(out, inputs, upstream=grad_out, prefix="out")

    return ("multi-head attention: heads(t) = t.reshape(B, L, H, d).permute(0, 2, 1, 3); "
            "attn = softmax(masked_fill(heads(q) heads(k)^T / sqrt(d), mask, -inf), -1); "
            "out = (attn heads(v)).permute(0, 2, 1, 3).reshape(B, T, H*d); heads = H",
            {"q": q, "k": k, "v": v, "mask": mask, "heads": scalar(heads), "grad_out": grad_out,
             "attn": attn.detach(), "out": out.detach(), **grads})


def layer_norm_chain():
    gen = generator(303)
    batch, rows, features, hidden = 2, 4, 6, 5
    x = normal(gen, batch, rows, features)
    params = {
        "ln1_weight": uniform(gen, features, lo=0.5, hi=1.5),
        "ln1_bias": uniform(gen, features, lo=-0.5, hi=0.5),
        "W": uniform(gen, hidden, features, lo=-features ** -0.5, hi=features ** -0.5),
        "b": uniform(gen, hidden, lo=-features ** -0.5, hi=features ** -0.5),
        "ln2_weight": uniform(gen, rows, hidden, lo=0.5, hi=1.5),
        "ln2_bias": uniform(gen, rows, hidden, lo=-0.5, hi=0.5),
    }
    eps = 1e-5

    inputs = leaves(x=x, **params)
    y = F.layer_norm(inputs["x"], (features,), inputs["ln1_weight"], inputs["ln1_bias"], eps)
    y = F.linear(F.gelu(y), inputs["W"], inputs["b"])
    y = F.layer_norm(y, (rows, hidden), inputs["ln2_weight"], inputs["ln2_bias"], eps)
    loss = y.square().sum()
    grads = gradients(loss, inputs, prefix="loss")

    return ("layer-norm chain: y = layer_norm(linear(gelu(layer_norm(x, [F], ln1_weight, ln1_bias, eps)), W, b), "
            "[R, H], ln2_weight, ln2_bias, eps); loss = sum(y^2)",
            {"x": x, **params, "eps": scalar(eps), "y": y.detach(), "loss": loss.detach(), **grads})


def deeprc_chain():
    gen = generator(404)
    n, amino_acids, position_features, length, kernels, kernel_size, outputs = 3, 20, 3, 10, 8, 5, 2
    channels = amino_acids + position_features
    # DeepRC's input: one-hot amino acids plus a few position features per sequence position
    one_hot = F.one_hot(torch.randint(0, amino_acids, (n, length), generator=gen), amino_acids)
    x = torch.cat([one_hot.to(torch.float64), uniform(gen, n, length, position_features, lo=0.0, hi=1.0)], 2)
    x = x.permute(0, 2, 1).contiguous()  # [N, 23, L]
    fan_in = channels * kernel_size
    params = {
        "conv_weight": uniform(gen, kernels, channels, kernel_size, lo=-fan_in ** -0.5, hi=fan_in ** -0.5),
        "conv_bias": uniform(gen, kernels, lo=-fan_in ** -0.5, hi=fan_in ** -0.5),
        "W": uniform(gen, outputs, kernels, lo=-kernels ** -0.5, hi=kernels ** -0.5),
        "b": uniform(gen, outputs, lo=-kernels ** -0.5, hi=kernels ** -0.5),
    }
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    pos_weight = torch.tensor([3.0, 0.5], dtype=torch.float64)

    inputs = leaves(x=x, **params)
    features = F.selu(F.conv1d(inputs["x"], inputs["conv_weight"], inputs["conv_bias"]))
    assert_no_ties(features, 2, "max over positions")
    pooled = features.max(dim=2).values
    logits = F.linear(pooled, inputs["W"], inputs["b"])
    probs = torch.sigmoid(logits)
    loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
    grads = gradients(loss, inputs, prefix="loss")

    return ("DeepRC-like head: logits = linear(max(selu(conv1d(x, conv_weight, conv_bias)), dim 2), W, b); "
            "probs = sigmoid(logits); loss = binary_cross_entropy_with_logits(logits, target, pos_weight) (mean)",
            {"x": x, **params, "target": target, "pos_weight": pos_weight,
             "logits": logits.detach(), "probs": probs.detach(), "loss": loss.detach(), **grads})


def hopfield_retrieval():
    gen = generator(505)
    dim, stored, states, steps = 6, 5, 3, 3
    stored_patterns = normal(gen, dim, stored)
    state_patterns = normal(gen, dim, states)
    beta = 1.0 / math.sqrt(dim)
    grad_xi_new = normal(gen, dim, states)

    inputs = leaves(X=stored_patterns, xi=state_patterns)
    xi = inputs["xi"]
    for _ in range(steps):  # ξ ← X softmax(β Xᵀ ξ), the modern Hopfield update (Ramsauer et al. 2020, eq. 3)
        xi = inputs["X"] @ torch.softmax(beta * inputs["X"].t() @ xi, dim=0)
    grads = gradients(xi, inputs, upstream=grad_xi_new, prefix="xi_new")

    return ("Hopfield retrieval: `steps` updates xi <- X softmax(beta X^T xi, dim 0), X [d, N] stored patterns and "
            "xi [d, M] state patterns as columns",
            {"X": stored_patterns, "xi": state_patterns, "beta": scalar(beta), "steps": scalar(steps),
             "grad_xi_new": grad_xi_new, "xi_new": xi.detach(), **grads})


def classification_losses():
    gen = generator(606)
    n, classes, length = 7, 5, 3
    ignore_index, label_smoothing = -1, 0.1
    logits = normal(gen, n, classes)
    target = torch.randint(0, classes, (n,), generator=gen)
    target[[1, 4]] = ignore_index
    spatial_logits = normal(gen, 2, classes, length)  # [N, C, L] with targets [N, L]
    spatial_target = torch.randint(0, classes, (2, length), generator=gen)
    spatial_target[0, 2] = ignore_index

    inputs = leaves(logits=logits)
    spatial_inputs = leaves(spatial_logits=spatial_logits)
    log_probs = F.log_softmax(inputs["logits"], dim=1)
    nll = F.nll_loss(log_probs, target, ignore_index=ignore_index)
    nll_none = F.nll_loss(log_probs, target, ignore_index=ignore_index, reduction="none")
    ce_smooth = F.cross_entropy(inputs["logits"], target, ignore_index=ignore_index,
                                label_smoothing=label_smoothing)
    ce_spatial = F.cross_entropy(spatial_inputs["spatial_logits"], spatial_target, ignore_index=ignore_index,
                                 label_smoothing=label_smoothing, reduction="sum")

    return ("classification losses: nll = nll_loss(log_softmax(logits, 1), target, ignore_index) (mean, and none); "
            "ce_smooth = cross_entropy(logits, target, ignore_index, label_smoothing) (mean); "
            "ce_spatial = the same on [N, C, L] logits and [N, L] targets with reduction sum",
            {"logits": logits, "target": target, "spatial_logits": spatial_logits, "spatial_target": spatial_target,
             "ignore_index": scalar(ignore_index), "label_smoothing": scalar(label_smoothing),
             "log_probs": log_probs.detach(), "nll": nll.detach(), "nll_none": nll_none.detach(),
             "ce_smooth": ce_smooth.detach(), "ce_spatial": ce_spatial.detach(),
             **gradients(nll, inputs, prefix="nll"), **gradients(ce_smooth, inputs, prefix="ce_smooth"),
             **gradients(ce_spatial, spatial_inputs, prefix="ce_spatial")})


def reductions_chain():
    gen = generator(707)
    rows, cols, k = 4, 6, 3
    x = normal(gen, rows, cols)
    assert_no_ties(x, 1, "topk boundary", k=k)
    assert_no_ties(x, 1, "median", k=None)

    inputs = leaves(x=x)
    cumsum = torch.cumsum(inputs["x"], dim=1)
    topk, median = torch.topk(inputs["x"], k, dim=1), torch.median(inputs["x"], dim=1)
    results = {
        "cumsum": cumsum,
        "logsumexp": torch.logsumexp(cumsum, dim=1),
        "norm": torch.linalg.vector_norm(cumsum),
        "var": torch.var(inputs["x"], dim=0, unbiased=True),
        "topk": topk.values,
        "median": median.values,  # the lower of the two middle values (6 columns)
    }
    upstream = {name: normal(gen, *r.shape) for name, r in results.items() if r.dim() > 0}
    grads = {}
    for name, r in results.items():
        grads.update(gradients(r, inputs, upstream=upstream.get(name), prefix=name))

    return ("reductions: cumsum = cumsum(x, 1); logsumexp = logsumexp(cumsum, [1]); norm = 2-norm of cumsum; "
            "var = var(x, [0], unbiased); topk(_indices) = topk(x, k, 1); median(_indices) = median(x, 1)",
            {"x": x, "k": scalar(k), **{f"grad_{name}": g for name, g in upstream.items()},
             **detached(results), "topk_indices": topk.indices, "median_indices": median.indices, **grads})


FIXTURES = [mlp_training_step, attention, layer_norm_chain, deeprc_chain, hopfield_retrieval,
            classification_losses, reductions_chain]


# ---- the file format -----------------------------------------------------------------------------------
def format_value(value, dtype):
    if dtype == torch.float64:
        return repr(float(value))  # shortest round-trip decimal; 'inf', '-inf', 'nan' also parse with strtod
    return str(int(value))


def render(name, description, tensors):
    lines = [f"# hopgrad golden fixture '{name}', written by scripts/make_fixtures.py "
             f"(PyTorch {torch.__version__}, float64); do not edit by hand.",
             f"# {description}"]
    for tensor_name, t in tensors.items():
        assert t.dtype in DTYPE_NAMES, f"{name}/{tensor_name}: unsupported dtype {t.dtype}"
        assert " " not in tensor_name
        t = t.detach().contiguous()
        lines.append(" ".join(["tensor", tensor_name, DTYPE_NAMES[t.dtype], str(t.dim()), *map(str, t.shape)]))
        rows = t.reshape(-1, t.shape[-1]) if t.dim() > 0 and t.shape[-1] > 0 else t.reshape(1, -1)
        lines.extend(" ".join(format_value(v, t.dtype) for v in row.tolist()) for row in rows)
    return "\n".join(lines) + "\n"


def parse(text):
    """The reference reader: {name: (dtype name, shape, values)}."""
    tokens = [tok for line in text.splitlines() if not line.startswith("#") for tok in line.split()]
    tensors, i = {}, 0
    while i < len(tokens):
        assert tokens[i] == "tensor", f"expected 'tensor', got {tokens[i]!r}"
        name, dtype, rank = tokens[i + 1], tokens[i + 2], int(tokens[i + 3])
        shape = tuple(int(s) for s in tokens[i + 4:i + 4 + rank])
        count = math.prod(shape)
        start = i + 4 + rank
        values = [float(v) if dtype == "float64" else int(v) for v in tokens[start:start + count]]
        tensors[name] = (dtype, shape, values)
        i = start + count
    return tensors


def same(expected_text, got_text, rtol=1e-12):
    expected, got = parse(expected_text), parse(got_text)
    if expected.keys() != got.keys():
        return "tensor names differ"
    for name, (dtype, shape, values) in expected.items():
        dtype2, shape2, values2 = got[name]
        if (dtype, shape) != (dtype2, shape2):
            return f"{name}: {dtype}{list(shape)} vs {dtype2}{list(shape2)}"
        for a, b in zip(values, values2):
            if not (a == b or abs(a - b) <= rtol * max(abs(a), abs(b)) or (math.isnan(a) and math.isnan(b))):
                return f"{name}: {a!r} vs {b!r}"
    return None


def write_or_check(fixtures, script="scripts/make_fixtures.py"):
    """The command line shared by the fixture scripts: write each (name, make) fixture, or with --check compare
    the checked-in files with a fresh computation and exit 1 when one is out of date."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the checked-in files, write nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one summation order
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name, make in fixtures:
        text = render(name, *make()).replace("scripts/make_fixtures.py", script, 1)
        path = FIXTURE_DIR / f"{name}.txt"
        if args.check:
            problem = same(path.read_text(), text) if path.exists() else "missing"
            if problem:
                failures += 1
                print(f"{path}: out of date ({problem})")
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(FIXTURE_DIR.parent.parent)} ({len(text)} bytes)")
    sys.exit(1 if failures else 0)


def main():
    write_or_check([(make.__name__, make) for make in FIXTURES])


if __name__ == "__main__":
    main()
