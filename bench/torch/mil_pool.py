#!/usr/bin/python3
"""mil_pool: one training step of a multiple-instance model — 32 bags × 100 instances × 230 features;
Linear(230→128) + ReLU per instance; Hopfield pooling with one learned query, 1 head, width 128; Linear(128→1);
BCE-with-logits; Adam (../shared/docs/benchmarks.md workload 4); the twin of bench/mil_pool.cpp.

hflayers is not a Debian package, so its HopfieldPooling is written out here with its defaults (the ones
hopgrad's HopfieldPooling shares): LayerNorms on the stored, state and projected patterns (three modules),
q/k/v in-projections with biases, β = 1/√128, softmax, out-projection. The query is normalised and projected
once and broadcast over the bags (hflayers expands it first: the same numbers, B times the work)."""
import math
import sys

import torch
import torch.nn.functional as F
from harness import run_workload

BAGS, INSTANCES, FEATURES, WIDTH = 32, 100, 230, 128


class HopfieldPooling(torch.nn.Module):
    def __init__(self, width, same_work=False):
        super().__init__()
        self.same_work = same_work
        self.pooling_weights = torch.nn.Parameter(torch.randn(1, 1, width) * 0.02)  # the learned query R
        self.norm_stored_pattern = torch.nn.LayerNorm(width)
        self.norm_state_pattern = torch.nn.LayerNorm(width)
        self.norm_pattern_projection = torch.nn.LayerNorm(width)
        self.in_proj = torch.nn.Linear(width, 3 * width)  # rows [q; k; v]
        self.out_proj = torch.nn.Linear(width, width)
        self.beta = 1 / math.sqrt(width)

    def forward(self, y):  # y [B, N, width] → [B, width]
        wq, wk, wv = self.in_proj.weight.chunk(3)
        bq, bk, bv = self.in_proj.bias.chunk(3)
        q = F.linear(self.norm_state_pattern(self.pooling_weights), wq, bq) * self.beta  # [1, 1, width]
        if self.same_work:
            # --same-work: W_K folded into the query, W_V after the weighted sum (as hopgrad's Hopfield layer);
            # q·b_K is the same for every instance and drops out of the softmax.
            association = torch.softmax((q @ wk) @ self.norm_stored_pattern(y).transpose(1, 2), dim=-1)
            return self.out_proj(F.linear(association @ self.norm_pattern_projection(y), wv, bv)).flatten(1)
        k = F.linear(self.norm_stored_pattern(y), wk, bk)                                # [B, N, width]
        v = F.linear(self.norm_pattern_projection(y), wv, bv)                            # [B, N, width]
        association = torch.softmax(q @ k.transpose(1, 2), dim=-1)                       # [B, 1, N]
        return self.out_proj(association @ v).flatten(1)


def make(setup):
    num_bags = BAGS * setup.batch_scale
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, WIDTH), torch.nn.ReLU(), HopfieldPooling(WIDTH, setup.same_work),
                                torch.nn.Linear(WIDTH, 1)).to(setup.device)
    with torch.no_grad():  # hflayers' (and hopgrad's) projection init: N(0, 0.02²) weights, zero biases
        for projection in (model[2].in_proj, model[2].out_proj):
            projection.weight.normal_(0.0, 0.02)
            projection.bias.zero_()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    bags = torch.randn(num_bags, INSTANCES, FEATURES, generator=setup.gen).to(setup.device)
    labels = torch.randint(0, 2, (num_bags, 1), generator=setup.gen).float().to(setup.device)

    def step():
        optimizer.zero_grad(set_to_none=True)  # as hopgrad's zero_grad (torch 1.13 defaults to zero-filling)
        F.binary_cross_entropy_with_logits(model(bags), labels).backward()
        optimizer.step()

    instances = num_bags * INSTANCES
    embedding = 2 * instances * FEATURES * WIDTH
    # W_K and W_V: of every instance, or (--same-work) W_K folded into the one query and W_V once per bag
    projections = 2.0 * ((1 + num_bags) if setup.same_work else 2 * instances) * WIDTH * WIDTH
    pooling = projections + 2 * (2 * instances * WIDTH) + 2.0 * num_bags * WIDTH * (WIDTH + 1)
    return step, 2 * embedding + 3 * pooling


if __name__ == "__main__":
    sys.exit(run_workload("mil_pool", "32 bags × 100 × 230, Linear+ReLU, HopfieldPooling (1 query, width 128), BCE, "
                          "Adam", make, has_same_work=True))
