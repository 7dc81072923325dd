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
"""

import pathlib
import sys

import torch
import torch.nn as nn

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


FIXTURES = {"nn_layers": layers, "nn_attention": attention}


def main():
    write_or_check(FIXTURES.items(), "scripts/make_nn_fixtures.py")


if __name__ == "__main__":
    main()
