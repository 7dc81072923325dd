#!/usr/bin/python3
"""memory_retrieval: dense modern-Hopfield retrieval, no grad — 1000 stored patterns X of width 784 (rows), 256
state patterns (queries) ξ, β = 1, three updates ξ ← softmax(β ξ Xᵀ) X (../shared/docs/benchmarks.md workload 5);
the twin of bench/memory_retrieval.cpp."""
import sys

import torch
from harness import run_workload

STORED, WIDTH, QUERIES, UPDATES, BETA = 1000, 784, 256, 3, 1.0


def make(setup):
    num_queries = QUERIES * setup.batch_scale
    stored = torch.randn(STORED, WIDTH, generator=setup.gen).to(setup.device)           # X [M, d]
    queries = torch.randn(num_queries, WIDTH, generator=setup.gen).to(setup.device)  # ξ [L, d]

    @torch.no_grad()
    def step():
        xi = queries
        for _ in range(UPDATES):
            xi = torch.softmax(BETA * (xi @ stored.T), dim=-1) @ stored

    return step, UPDATES * 2 * (2.0 * num_queries * STORED * WIDTH)


if __name__ == "__main__":
    sys.exit(run_workload("memory_retrieval", "1000 stored patterns × 784, 256 queries, β = 1, 3 updates, no grad",
                          make))
