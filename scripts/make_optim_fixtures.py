#!/usr/bin/env python3
"""Golden fixtures for tests/test_optim.cpp: optimizer steps, learning-rate schedules and gradient clipping,
computed with PyTorch's torch.optim (1.13).

How to run (from the repository root; Debian's python3-torch, PyTorch 1.13 CPU):

    /usr/bin/python3 scripts/make_optim_fixtures.py          # (re)writes tests/fixtures/optim_<name>.txt
    /usr/bin/python3 scripts/make_optim_fixtures.py --check  # recomputes and compares with the checked-in files

The file format, reader and float64/one-thread conventions are those of scripts/make_fixtures.py.

Every optimizer fixture trains the same tiny problem, float64:
    loss(W, b) = mse_loss(linear(x, W, b), y),  x [6, 4], y [6, 3], W [3, 4], b [3]
plus a parameter `unused` [2] that never gets a gradient (optimizers must skip it and leave it unchanged).
Each step is zero_grad → loss → backward → step. For a configuration <c>, `<c>_W` [steps, 3, 4] and `<c>_b`
[steps, 3] hold the parameters after each step and `<c>_loss` [steps] the loss before each step. The
configurations (hyperparameters repeated in tests/test_optim.cpp):

  optim_sgd      plain     SGD(lr=0.1)
                 momentum  SGD(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)
                 nesterov  SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
  optim_adam     default   Adam(lr=0.01)
                 amsgrad   Adam(lr=0.02, betas=(0.8, 0.95), eps=1e-4, weight_decay=0.1, amsgrad=True)
  optim_adamw    default   AdamW(lr=0.01)                      (weight_decay 1e-2 by default)
                 amsgrad   AdamW(lr=0.02, betas=(0.85, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)
  optim_groups   adam      Adam([{W, unused}, {b, lr=0.1, weight_decay=0.1}], lr=0.01)
                 sgd       SGD([{W, unused}, {b, momentum=0.5, lr=0.2}], lr=0.1, momentum=0.9)
                 scheduled SGD(lr=0.1, momentum=0.9) with CosineAnnealingLR(T_max=4), stepped after each step

  optim_schedulers  lrs of a two-group SGD (lrs 0.1 and 0.01), `<s>_lrs` [13, 2]: row 0 after construction,
                 row k after k scheduler steps:
                 step         StepLR(step_size=3, gamma=0.5)
                 exponential  ExponentialLR(gamma=0.9)
                 cosine       CosineAnnealingLR(T_max=5, eta_min=0.001)   (runs past T_max: the lr rises again)
                 warmup       hopgrad's LinearWarmupCosine(warmup_steps=3, total_steps=10, min_lr=0.001),
                              written as a LambdaLR with the closed form documented in nn/optim/lr_scheduler.h
  optim_clip     the gradients `grad_W`, `grad_b` of the loss at the initial parameters, scaled by 3;
                 clip_grad_norm_ with (max_norm, norm_type) = norm2 (0.5, 2), norminf (0.5, inf), norm1 (0.1, 1),
                 loose (100, 2): `<c>_total` and the clipped `<c>_W`, `<c>_b`; clip_grad_value_(0.05): `value_W`,
                 `value_b`.
"""

import math
import pathlib
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_fixtures import generator, normal, scalar, uniform, write_or_check  # noqa: E402

STEPS = 6
SCHEDULE_STEPS = 12


def problem():
    gen = generator(505)
    return {"x": normal(gen, 6, 4), "y": normal(gen, 6, 3), "W": uniform(gen, 3, 4, lo=-0.5, hi=0.5),
            "b": uniform(gen, 3, lo=-0.5, hi=0.5), "unused": uniform(gen, 2)}


def loss_of(data, W, b):
    return F.mse_loss(F.linear(data["x"], W, b), data["y"])


def train(name, data, make_optimizer, make_scheduler=None):
    """Runs STEPS steps; returns {<name>_W, <name>_b, <name>_loss} and checks `unused` stayed put."""
    W, b, unused = (data[k].clone().requires_grad_(True) for k in ("W", "b", "unused"))
    optimizer = make_optimizer(W, b, unused)
    scheduler = make_scheduler(optimizer) if make_scheduler else None
    Ws, bs, losses = [], [], []
    for _ in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(data, W, b)
        loss.backward()
        optimizer.step()
        if scheduler:
            scheduler.step()
        Ws.append(W.detach().clone())
        bs.append(b.detach().clone())
        losses.append(loss.detach().clone())
    assert torch.equal(unused.detach(), data["unused"]) and unused not in optimizer.state
    return {f"{name}_W": torch.stack(Ws), f"{name}_b": torch.stack(bs), f"{name}_loss": torch.stack(losses)}


def inputs(data):
    return {k: data[k] for k in ("x", "y", "W", "b", "unused")}


# ---- the fixtures --------------------------------------------------------------------------------------
def optim_sgd():
    data = problem()
    SGD = torch.optim.SGD
    return ("SGD steps on mse_loss(linear(x, W, b), y); configurations in scripts/make_optim_fixtures.py",
            {**inputs(data),
             **train("plain", data, lambda *p: SGD(p, lr=0.1)),
             **train("momentum", data, lambda *p: SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
             **train("nesterov", data, lambda *p: SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01))})


def optim_adam():
    data = problem()
    Adam = torch.optim.Adam
    return ("Adam steps on mse_loss(linear(x, W, b), y); configurations in scripts/make_optim_fixtures.py",
            {**inputs(data),
             **train("default", data, lambda *p: Adam(p, lr=0.01)),
             **train("amsgrad", data, lambda *p: Adam(p, lr=0.02, betas=(0.8, 0.95), eps=1e-4, weight_decay=0.1,
                                                      amsgrad=True))})


def optim_adamw():
    data = problem()
    AdamW = torch.optim.AdamW
    return ("AdamW steps on mse_loss(linear(x, W, b), y); configurations in scripts/make_optim_fixtures.py",
            {**inputs(data),
             **train("default", data, lambda *p: AdamW(p, lr=0.01)),
             **train("amsgrad", data, lambda *p: AdamW(p, lr=0.02, betas=(0.85, 0.99), eps=1e-6, weight_decay=0.1,
                                                       amsgrad=True))})


def optim_groups():
    data = problem()

    def adam(W, b, unused):
        return torch.optim.Adam([{"params": [W, unused]}, {"params": [b], "lr": 0.1, "weight_decay": 0.1}], lr=0.01)

    def sgd(W, b, unused):
        return torch.optim.SGD([{"params": [W, unused]}, {"params": [b], "momentum": 0.5, "lr": 0.2}], lr=0.1,
                               momentum=0.9)

    return ("parameter groups and a scheduled optimizer on mse_loss(linear(x, W, b), y); configurations in "
            "scripts/make_optim_fixtures.py",
            {**inputs(data), **train("adam", data, adam), **train("sgd", data, sgd),
             **train("scheduled", data, lambda *p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
                     lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4))})


def warmup_cosine(warmup_steps, total_steps, min_lr, base_lr):
    """hopgrad's LinearWarmupCosine as a LambdaLR factor (η_t / η₀) for one group."""
    def factor(t):
        if t < warmup_steps:
            return t / warmup_steps
        progress = min(1.0, (t - warmup_steps) / max(1, total_steps - warmup_steps))
        return (min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2) / base_lr
    return factor


def optim_schedulers():
    lr_scheduler = torch.optim.lr_scheduler
    base_lrs = (0.1, 0.01)
    schedules = {
        "step": lambda opt: lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),
        "exponential": lambda opt: lr_scheduler.ExponentialLR(opt, gamma=0.9),
        "cosine": lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=5, eta_min=0.001),
        "warmup": lambda opt: lr_scheduler.LambdaLR(opt, [warmup_cosine(3, 10, 0.001, lr) for lr in base_lrs]),
    }
    tensors = {}
    for name, make in schedules.items():
        params = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
        opt = torch.optim.SGD([{"params": [params[0]], "lr": base_lrs[0]}, {"params": [params[1]], "lr": base_lrs[1]}])
        scheduler = make(opt)
        rows = [[g["lr"] for g in opt.param_groups]]
        for _ in range(SCHEDULE_STEPS):
            opt.step()
            scheduler.step()
            rows.append([g["lr"] for g in opt.param_groups])
        tensors[f"{name}_lrs"] = torch.tensor(rows, dtype=torch.float64)
    return ("learning rates of a two-group SGD (lrs 0.1, 0.01) under each scheduler: row k after k scheduler steps; "
            "configurations in scripts/make_optim_fixtures.py", tensors)


def optim_clip():
    data = problem()
    W, b = data["W"].clone().requires_grad_(True), data["b"].clone().requires_grad_(True)
    loss_of(data, W, b).backward()
    grads = {"grad_W": W.grad * 3, "grad_b": b.grad * 3}
    tensors = {**inputs(data), **grads}
    for name, max_norm, norm_type in (("norm2", 0.5, 2.0), ("norminf", 0.5, math.inf), ("norm1", 0.1, 1.0),
                                      ("loose", 100.0, 2.0)):
        W.grad, b.grad = grads["grad_W"].clone(), grads["grad_b"].clone()
        total = torch.nn.utils.clip_grad_norm_([W, b], max_norm, norm_type)
        tensors.update({f"{name}_total": total, f"{name}_W": W.grad.clone(), f"{name}_b": b.grad.clone()})
    W.grad, b.grad = grads["grad_W"].clone(), grads["grad_b"].clone()
    torch.nn.utils.clip_grad_value_([W, b], 0.05)
    tensors.update({"value_W": W.grad.clone(), "value_b": b.grad.clone()})
    return ("clip_grad_norm_ / clip_grad_value_ of 3·∇loss; configurations in scripts/make_optim_fixtures.py",
            tensors)


FIXTURES = [optim_sgd, optim_adam, optim_adamw, optim_groups, optim_schedulers, optim_clip]


def main():
    write_or_check([(make.__name__, make) for make in FIXTURES], "scripts/make_optim_fixtures.py")


if __name__ == "__main__":
    main()
