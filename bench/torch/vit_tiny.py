#!/usr/bin/python3
"""vit_tiny: one training step of a ViT on 32×32×3 images, patch 4 (64 tokens + CLS), width 192, depth 6, 3 heads,
MLP ratio 4, pre-norm LayerNorm blocks, batch 64, cross-entropy, AdamW (../shared/docs/benchmarks.md workload 2);
the twin of bench/vit_tiny.cpp. The model is timm's VisionTransformer as PyTorch users write it (the layout and
init of hg::models::ViT): one qkv Linear, scores q·kᵀ/√d, softmax, ·v, proj; LayerNorm eps 1e-6; exact GELU."""
import sys

import torch
from harness import run_workload
from torch import nn

BATCH, IMAGE, PATCH, CHANNELS, CLASSES = 64, 32, 4, 3, 10
DIM, DEPTH, HEADS, HIDDEN = 192, 6, 3, 4 * 192


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        weights = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, t, d))

    def forward_class_token(self, x):
        """--same-work: the class token's query only (keys and values of every token), [N, 1, D]."""
        n, t, d = x.shape
        wq, wkv = self.qkv.weight.split([d, 2 * d])
        bq, bkv = self.qkv.bias.split([d, 2 * d])
        q = nn.functional.linear(x[:, :1], wq, bq).reshape(n, 1, self.heads, d // self.heads).transpose(1, 2)
        k, v = nn.functional.linear(x, wkv, bkv).reshape(n, t, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, 1, d))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def forward_class_token(self, x):
        x = x[:, :1] + self.attn.forward_class_token(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, same_work=False):
        super().__init__()
        self.same_work = same_work
        patches = (IMAGE // PATCH) ** 2
        self.patch_embed = nn.Conv2d(CHANNELS, DIM, PATCH, stride=PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, patches + 1, DIM))
        self.blocks = nn.Sequential(*[Block(DIM, HEADS, HIDDEN) for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(DIM, eps=1e-6)
        self.head = nn.Linear(DIM, CLASSES)
        # timm's init_weights_vit_timm (as hg::models::ViT::reset_parameters)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, images):
        patches = self.patch_embed(images).flatten(2).transpose(1, 2)  # [N, D, h, w] → [N, P, D]
        z = torch.cat([self.cls_token.expand(images.shape[0], -1, -1), patches], dim=1) + self.pos_embed
        if self.same_work:  # the last block for the class token only, as hg::models::ViT
            return self.head(self.norm(self.blocks[-1].forward_class_token(self.blocks[:-1](z)))[:, 0])
        return self.head(self.norm(self.blocks(z))[:, 0])


def flops_per_step(batch, same_work):
    """As bench/vit_tiny.cpp: 3× the forward GEMMs, 2× for the patch embedding (its input needs no gradient)."""
    tokens = (IMAGE // PATCH) ** 2 + 1
    patch_embed = 2.0 * (tokens - 1) * (CHANNELS * PATCH * PATCH) * DIM
    block = (2.0 * tokens * DIM * 3 * DIM + 2.0 * 2 * tokens * tokens * DIM + 2.0 * tokens * DIM * DIM
             + 2.0 * 2 * tokens * DIM * HIDDEN)
    last = block
    if same_work:
        last = (2.0 * tokens * DIM * 2 * DIM + 2.0 * DIM * DIM + 2.0 * 2 * tokens * DIM + 2.0 * DIM * DIM
                + 2.0 * 2 * DIM * HIDDEN)
    return batch * (2 * patch_embed + 3 * ((DEPTH - 1) * block + last + 2.0 * DIM * CLASSES))


def make(setup):
    batch = BATCH * setup.batch_scale
    model = ViT(setup.same_work).to(setup.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    images = torch.randn(batch, CHANNELS, IMAGE, IMAGE, generator=setup.gen).to(setup.device)
    labels = torch.randint(0, CLASSES, (batch,), generator=setup.gen).to(setup.device)

    def step():
        optimizer.zero_grad(set_to_none=True)  # as hopgrad's zero_grad (torch 1.13 defaults to zero-filling)
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    return step, flops_per_step(batch, setup.same_work)


if __name__ == "__main__":
    sys.exit(run_workload(
        "vit_tiny", "ViT 32×32×3, patch 4, width 192, depth 6, 3 heads, MLP ×4, batch 64, cross-entropy, AdamW", make, has_same_work=True))
