#!/usr/bin/python3
"""hopfield_attention: multi-head softmax attention as a Hopfield layer with one update — batch 32, 64 state and
64 stored patterns (self-association), width 128, 4 heads, with in/out projections; forward + backward of
Σ out, the input requiring grad (../shared/docs/benchmarks.md workload 1); the twin of bench/hopfield_attention.cpp.
A Hopfield layer with one update and no pattern LayerNorms is torch.nn.MultiheadAttention."""
import sys

import torch
from harness import run_workload

BATCH, PATTERNS, WIDTH, HEADS = 32, 64, 128, 4


def make(setup):
    batch = BATCH * setup.batch_scale
    attention = torch.nn.MultiheadAttention(WIDTH, HEADS, batch_first=True).to(setup.device)
    with torch.no_grad():  # the Hopfield layer's (hflayers') init: N(0, 0.02²) weights, zero biases
        for weight in (attention.in_proj_weight, attention.out_proj.weight):
            weight.normal_(0.0, 0.02)
        attention.in_proj_bias.zero_()
        attention.out_proj.bias.zero_()
    x = torch.randn(batch, PATTERNS, WIDTH, generator=setup.gen).to(setup.device).requires_grad_()

    def step():
        attention.zero_grad(set_to_none=True)
        x.grad = None
        # need_weights=False: the head-averaged weights would be extra work the hopgrad side does not do.
        out, _ = attention(x, x, x, need_weights=False)
        out.sum().backward()

    tokens = batch * PATTERNS
    forward = 2 * tokens * WIDTH * 3 * WIDTH + 2 * (2 * tokens * PATTERNS * WIDTH) + 2 * tokens * WIDTH * WIDTH
    return step, 3.0 * forward


if __name__ == "__main__":
    sys.exit(run_workload("hopfield_attention", "Hopfield layer = 4-head attention, batch 32, 64 patterns, width 128, "
                          "fwd+bwd", make))
