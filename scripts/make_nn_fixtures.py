#!/usr/bin/env python3
"""Golden fixtures for tests/test_nn_layers.cpp: torch.nn layers with random weights, their outputs and gradients.

How to run (from the repository root; Debian's python3-torch, PyTorch 1.13 CPU):

    /usr/bin/python3 scripts/make_nn_fixtures.py          # (re)writes tests/fixtures/nn_*.txt
    /usr/bin/python3 scripts/make_nn_fixtures.py --check  # recomputes and compares with the checked-in files

The file format and naming conventions are those of scripts/make_fixtures.py (whose writer this reuses). Each
layer's tensors are prefixed with the layer's case name: `<case>.<parameter name as torch.nn names it>` (the C++
test copies them into the hopgrad module by its own named_parameters(), so the names are checked too), `<case>.x`
for inputs, `<case>.y` for outputs; attention cases also store gradients `d<case>.out/d<case>.<input or param>`
of Σ grad_out ⊙ out.

Fixtures:
  nn_layers     Linear (with and without bias), LayerNorm over one and two dims, Embedding with padding_idx,
                Conv1d (stride, padding, dilation), Conv2d (groups, per-dim stride and padding), MaxPool1d/2d,
                the activation modules (ReLU, GELU exact and tanh, SELU, ELU(α = 0.5), Tanh, Sigmoid), Flatten.
  nn_attention  nn.MultiheadAttention: `self`: self-attention, [L, N, E], key_padding_mask and a bool attn_mask;
                `cross`: batch_first, kdim/vdim ≠ E, float [N·h, L, S] attn_mask, per-head weights; `extra`:
                unbatched with add_bias_kv and add_zero_attn and a key_padding_mask. Dropout 0.
  nn_conv_pool_modes
                Conv1d/Conv2d with padding="same" (even kernels and dilations that need one more zero on the
                right, groups) and "valid" (with stride); MaxPool1d/2d with dilation and ceil_mode (including a
                last window dropped by torch's "must start inside the input or left padding" rule). Besides
                <case>.y, the gradients d<case>.y/<case>.<x or parameter> of Σ <case>.grad_y ⊙ y.
  nn_losses     F.cross_entropy and F.nll_loss over the grid class weights (none / [C]) × label smoothing (0 /
                0.15, cross_entropy only) × ignore_index (-100 with one such target / 2, a real class) ×
                reduction (none / mean / sum) on logits [5, 4]; cross_entropy on spatial [2, 4, 3] logits (weights,
                smoothing 0.1, ignore_index 1) and unbatched [4] logits. Case names
                `<ce|nll>_<w|nw>_ls<ε>_ig<ignore_index>_<reduction>`; d<case>/dlogits (d<case>/dlog_probs for
                nll) is the gradient of Σ grad_<case> ⊙ <case> for reduction none, of <case> itself otherwise.
"""

import pathlib
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_fixtures import generator, normal, uniform, write_or_check  # noqa: E402


def with_params(case, module, gen):
    """Fills every parameter with fresh random values (so tests do not depend on default init) and returns them."""
    tensors = {}
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(uniform(gen, *p.shape))
            tensors[f"{case}.{name}"] = p.detach().clone()
    return tensors


def layers():
    gen = generator(606)
    out = {}

    def run(case, module, x):
        module = module.double()
        out.update(with_params(case, module, gen))
        out[f"{case}.x"] = x
        out[f"{case}.y"] = module(x).detach()

    run("linear", nn.Linear(5, 3), normal(gen, 2, 4, 5))
    run("linear_nobias", nn.Linear(5, 3, bias=False), normal(gen, 3, 5))
    run("layer_norm", nn.LayerNorm(6), normal(gen, 2, 3, 6))
    run("layer_norm2", nn.LayerNorm([3, 4], eps=1e-3), normal(gen, 2, 3, 4))
    embedding = nn.Embedding(7, 4, padding_idx=2)
    run("embedding", embedding, torch.tensor([[0, 2, 6], [2, 3, 1]]))
    run("conv1d", nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2), normal(gen, 2, 4, 11))
    run("conv2d", nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), groups=2), normal(gen, 2, 4, 7, 5))
    run("max_pool1d", nn.MaxPool1d(3, stride=2, padding=1), normal(gen, 2, 3, 9))
    run("max_pool2d", nn.MaxPool2d((2, 3), stride=(2, 2), padding=(1, 1)), normal(gen, 2, 3, 5, 6))
    x = normal(gen, 3, 7) * 2
    for case, module in [("relu", nn.ReLU()), ("gelu", nn.GELU()), ("gelu_tanh", nn.GELU(approximate="tanh")),
                         ("selu", nn.SELU()), ("elu", nn.ELU(alpha=0.5)), ("tanh", nn.Tanh()),
                         ("sigmoid", nn.Sigmoid())]:
        run(case, module, x)
    run("flatten", nn.Flatten(), normal(gen, 2, 3, 2, 2))
    run("flatten_1_2", nn.Flatten(1, 2), normal(gen, 2, 3, 2, 2))
    return ("torch.nn layers with uniform(-1, 1) parameters: <case>.y = layer(<case>.x)", out)


def attention():
    gen = generator(707)
    out = {}

    def run(case, module, query, key, value, grad_out, self_attention=False, **kwargs):
        module = module.double()
        params = with_params(case, module, gen)
        inputs = {"query": query.clone().requires_grad_(True)}
        if self_attention:
            inputs["key"] = inputs["value"] = inputs["query"]
        else:
            inputs["key"] = key.clone().requires_grad_(True)
            inputs["value"] = value.clone().requires_grad_(True)
        result, weights = module(inputs["query"], inputs["key"], inputs["value"], **kwargs)
        leaves = {f"{case}.{name}": t for name, t in (("query", inputs["query"]),) +
                  (() if self_attention else (("key", inputs["key"]), ("value", inputs["value"])))}
        leaves.update({f"{case}.{name}": p for name, p in module.named_parameters()})
        grads = torch.autograd.grad(result, list(leaves.values()), grad_outputs=grad_out)
        out.update(params)
        out.update({name: t.detach() for name, t in leaves.items() if name not in params})
        for name, value in kwargs.items():
            if isinstance(value, torch.Tensor):
                out[f"{case}.{name}"] = value
        out[f"{case}.grad_out"] = grad_out
        out[f"{case}.out"] = result.detach()
        out[f"{case}.weights"] = weights.detach()
        out.update({f"d{case}.out/{name}": g for name, g in zip(leaves, grads)})

    # self-attention, [L, N, E]; every query keeps at least one key
    L, N, E, H = 4, 2, 6, 2
    key_padding_mask = torch.tensor([[False, False, False, True], [False, True, False, False]])
    attn_mask = torch.tensor([[False, True, False, False], [False, False, True, False],
                              [True, False, False, False], [False, False, False, False]])
    run("self", nn.MultiheadAttention(E, H), normal(gen, L, N, E), None, None, normal(gen, L, N, E),
        self_attention=True, key_padding_mask=key_padding_mask, attn_mask=attn_mask)

    # cross-attention, batch_first, kdim/vdim ≠ E, float mask per (batch, head), per-head weights
    S, kdim, vdim = 5, 5, 3
    run("cross", nn.MultiheadAttention(E, 3, kdim=kdim, vdim=vdim, batch_first=True), normal(gen, N, L, E),
        normal(gen, N, S, kdim), normal(gen, N, S, vdim), normal(gen, N, L, E),
        attn_mask=normal(gen, N * 3, L, S), average_attn_weights=False)

    # unbatched, add_bias_kv and add_zero_attn, key padding
    run("extra", nn.MultiheadAttention(E, H, add_bias_kv=True, add_zero_attn=True), normal(gen, L, E),
        normal(gen, S, E), normal(gen, S, E), normal(gen, L, E),
        key_padding_mask=torch.tensor([False, True, False, False, True]))
    return ("torch.nn.MultiheadAttention with uniform(-1, 1) parameters, dropout 0: (<case>.out, <case>.weights) = "
            "mha(<case>.query, <case>.key, <case>.value, **masks); d<case>.out/<x> = grad of sum(grad_out * out)",
            out)


def conv_pool_modes():
    gen = generator(808)
    out = {}

    def run(case, module, x):
        module = module.double()
        out.update(with_params(case, module, gen))
        x = x.clone().requires_grad_(True)
        y = module(x)
        grad_y = normal(gen, *y.shape)
        leaves = {f"{case}.x": x}
        leaves.update({f"{case}.{name}": p for name, p in module.named_parameters()})
        grads = torch.autograd.grad(y, list(leaves.values()), grad_outputs=grad_y)
        out[f"{case}.x"] = x.detach()
        out[f"{case}.y"] = y.detach()
        out[f"{case}.grad_y"] = grad_y
        out.update({f"d{case}.y/{name}": g for name, g in zip(leaves, grads)})

    # "same": total padding dilation·(k − 1); odd totals put the extra zero on the right
    run("conv1d_same_even", nn.Conv1d(3, 4, 4, padding="same"), normal(gen, 2, 3, 7))  # total 3: (1, 2)
    run("conv1d_same_dilated", nn.Conv1d(3, 2, 2, padding="same", dilation=3), normal(gen, 2, 3, 6))  # (1, 2)
    run("conv1d_same_odd", nn.Conv1d(4, 4, 3, padding="same", dilation=2, groups=2), normal(gen, 1, 4, 5))  # (2, 2)
    run("conv1d_valid", nn.Conv1d(3, 2, 3, padding="valid", stride=2), normal(gen, 2, 3, 8))
    run("conv2d_same", nn.Conv2d(4, 6, (4, 3), padding="same", dilation=(1, 2), groups=2),
        normal(gen, 2, 4, 5, 6))  # H: (1, 2), W: (2, 2)
    run("conv2d_same_both", nn.Conv2d(2, 3, (2, 4), padding="same", dilation=(3, 1)),
        normal(gen, 1, 2, 4, 5))  # H: (1, 2), W: (1, 2)
    run("conv2d_same_unbatched", nn.Conv2d(2, 2, 2, padding="same"), normal(gen, 2, 3, 3))  # (0, 1) each
    run("conv2d_valid", nn.Conv2d(2, 3, 3, padding="valid", stride=2), normal(gen, 2, 2, 7, 6))
    run("max_pool1d_dilated", nn.MaxPool1d(3, stride=2, padding=1, dilation=2), normal(gen, 2, 3, 10))
    run("max_pool1d_ceil", nn.MaxPool1d(3, stride=2, ceil_mode=True), normal(gen, 2, 3, 8))  # 4 windows, floor 3
    run("max_pool1d_ceil_dilated", nn.MaxPool1d(4, stride=3, padding=2, dilation=2, ceil_mode=True),
        normal(gen, 1, 2, 11))
    run("max_pool2d_dilated_ceil", nn.MaxPool2d((3, 2), stride=(2, 3), padding=(1, 1), dilation=(2, 1),
                                                ceil_mode=True), normal(gen, 2, 2, 9, 8))
    # ceil would give 4 windows per dim; the 4th would start at 6 − 1 = 5, past the input: torch drops it
    run("max_pool2d_ceil_dropped", nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True), normal(gen, 1, 2, 5, 5))
    return ("torch.nn Conv1d/Conv2d (padding same/valid) and MaxPool1d/2d (dilation, ceil_mode) with uniform(-1, 1) "
            "parameters: <case>.y = layer(<case>.x); d<case>.y/<name> = grad of sum(<case>.grad_y * y)", out)


def losses():
    gen = generator(909)
    classes = 4
    logits = normal(gen, 5, classes) * 1.5
    weight = uniform(gen, classes, lo=0.2, hi=2.0)
    targets = {-100: torch.tensor([1, -100, 3, 0, 2]), 2: torch.tensor([1, 2, 3, 0, 2])}
    out = {"logits": logits, "log_probs": logits.log_softmax(1), "weight": weight,
           "target_ig-100": targets[-100], "target_ig2": targets[2]}

    def run(name, loss_fn, input_name, reduction):
        x = out[input_name].clone().requires_grad_(True)
        y = loss_fn(x)
        out[name] = y.detach()
        upstream = None
        if reduction == "none":
            upstream = normal(gen, *y.shape)
            out[f"grad_{name}"] = upstream
        out[f"d{name}/d{input_name}"] = torch.autograd.grad(y, x, grad_outputs=upstream)[0]

    for weighted in (False, True):
        w = weight if weighted else None
        tag = "w" if weighted else "nw"
        for ignore_index, target in targets.items():
            for reduction in ("none", "mean", "sum"):
                for smoothing in (0.0, 0.15):
                    run(f"ce_{tag}_ls{smoothing}_ig{ignore_index}_{reduction}",
                        lambda x: F.cross_entropy(x, target, weight=w, ignore_index=ignore_index,
                                                  reduction=reduction, label_smoothing=smoothing),
                        "logits", reduction)
                run(f"nll_{tag}_ig{ignore_index}_{reduction}",
                    lambda x: F.nll_loss(x, target, weight=w, ignore_index=ignore_index, reduction=reduction),
                    "log_probs", reduction)

    out["spatial_logits"] = normal(gen, 2, classes, 3)
    out["spatial_target"] = torch.tensor([[0, 1, 3], [2, 1, 1]])  # ignore_index 1
    for reduction in ("none", "mean", "sum"):
        run(f"ce_spatial_{reduction}",
            lambda x: F.cross_entropy(x, out["spatial_target"], weight=weight, ignore_index=1, reduction=reduction,
                                      label_smoothing=0.1),
            "spatial_logits", reduction)
    out["unbatched_logits"] = normal(gen, classes)
    out["unbatched_target"] = torch.tensor(3)
    run("ce_unbatched_mean",
        lambda x: F.cross_entropy(x, out["unbatched_target"], weight=weight, label_smoothing=0.2),
        "unbatched_logits", "mean")
    return ("F.cross_entropy / F.nll_loss with class weights, label smoothing and ignore_index for each reduction "
            "(torch 1.13: Mean divides by the summed weights of the non-ignored targets)", out)


FIXTURES = {"nn_layers": layers, "nn_attention": attention, "nn_conv_pool_modes": conv_pool_modes,
            "nn_losses": losses}


def main():
    write_or_check(FIXTURES.items(), "scripts/make_nn_fixtures.py")


if __name__ == "__main__":
    main()
