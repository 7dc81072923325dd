#!/usr/bin/python3
"""deeprc: one training step of DeepRC on 4 repertoires × 10 000 sequences × length 20 × 23 features:
Conv1d(23→32, width 9) + SELU + max over positions; attention net Linear(32→32) + SELU + Linear(32→1); softmax over
each repertoire's sequences; weighted sum of the embeddings; Linear(32→1); BCE-with-logits; Adam
(../shared/docs/benchmarks.md workload 3); the twin of bench/deeprc.cpp. Written as DeepRC's reference code does
it (sequences transposed to [n, features, length] for the Conv1d), with its SNN init: every weight
~ N(0, 1 / (fan_out · fan_in)), biases at PyTorch's default."""
import sys

import torch
from harness import run_workload
from torch import nn

BAGS, SEQUENCES, LENGTH, FEATURES = 4, 10000, 20, 23
KERNELS, WIDTH, UNITS = 32, 9, 32


class DeepRC(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Conv1d(FEATURES, KERNELS, WIDTH)
        self.attention = nn.Sequential(nn.Linear(KERNELS, UNITS), nn.SELU(), nn.Linear(UNITS, 1))
        self.output = nn.Linear(KERNELS, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.normal_(m.weight, std=m.weight.numel() ** -0.5)

    def forward(self, repertoires):
        bags, n, length, features = repertoires.shape
        sequences = repertoires.reshape(bags * n, length, features).transpose(1, 2)  # [n, features, length]
        z = torch.selu(self.embedding(sequences)).amax(dim=2).reshape(bags, n, KERNELS)
        w = self.attention(z).squeeze(-1).softmax(dim=1)  # [B, N]: over each repertoire's sequences
        return self.output((w.unsqueeze(1) @ z).squeeze(1))


def flops_per_step(bags):
    """As bench/deeprc.cpp: 3× the forward, 2× for the convolution (its input needs no gradient)."""
    seqs, positions = bags * SEQUENCES, LENGTH - WIDTH + 1
    conv = 2.0 * seqs * positions * (FEATURES * WIDTH) * KERNELS
    rest = 2.0 * seqs * (KERNELS * UNITS + UNITS) + 2.0 * seqs * KERNELS + 2.0 * bags * KERNELS
    return 2 * conv + 3 * rest


def make(setup):
    bags = BAGS * setup.batch_scale
    model = DeepRC().to(setup.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    repertoires = torch.randn(bags, SEQUENCES, LENGTH, FEATURES, generator=setup.gen).to(setup.device)
    labels = torch.randint(0, 2, (bags, 1), generator=setup.gen).float().to(setup.device)

    def step():
        optimizer.zero_grad(set_to_none=True)  # as hopgrad's zero_grad (torch 1.13 defaults to zero-filling)
        nn.functional.binary_cross_entropy_with_logits(model(repertoires), labels).backward()
        optimizer.step()

    return step, flops_per_step(bags)


if __name__ == "__main__":
    sys.exit(run_workload(
        "deeprc", "DeepRC 4 × 10000 sequences × 20 × 23, Conv1d(23→32, 9)+SELU+max, attention pooling, BCE, Adam",
        make))
