#!/usr/bin/python3
"""mlp_small: one training step of a 784→256→10 MLP on a batch of 128, cross-entropy, Adam
(../shared/docs/benchmarks.md workload 6); the twin of bench/mlp_small.cpp."""
import sys

import torch
from harness import run_workload

BATCH, IN, HIDDEN, CLASSES = 128, 784, 256, 10


def make(setup):
    batch = BATCH * setup.batch_scale
    model = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES))
    model.to(setup.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, IN, generator=setup.gen).to(setup.device)
    y = torch.randint(0, CLASSES, (batch,), generator=setup.gen).to(setup.device)

    def step():
        optimizer.zero_grad(set_to_none=True)  # as hopgrad's zero_grad (torch 1.13 defaults to zero-filling)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step, 2.0 * batch * (2 * IN * HIDDEN + 3 * HIDDEN * CLASSES)  # as bench/mlp_small.cpp


if __name__ == "__main__":
    sys.exit(run_workload("mlp_small", "784→256→10 MLP, ReLU, batch 128, cross-entropy, Adam", make))
