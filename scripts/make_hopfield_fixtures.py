#!/usr/bin/env python3
"""Golden fixtures for tests/test_hopfield.cpp: the Hopfield layer's association (spec A.3) in plain PyTorch.

How to run (from the repository root; Debian's python3-torch, PyTorch 1.13 CPU):

    /usr/bin/python3 scripts/make_hopfield_fixtures.py          # (re)writes tests/fixtures/hopfield_layers.txt
    /usr/bin/python3 scripts/make_hopfield_fixtures.py --check  # recomputes and compares with the checked-in file

`associate` below follows spec A.3 step by step in hflayers' sequence-first layout ([seq, B, features], heads
flattened to rows b·H + h), written independently of the C++ code. It does not call hflayers: hflayers' iterated
updates use masked_select, whose backward is wrong on the transposed tensors it passes in PyTorch 1.13 (spec A.5.6),
so every update here is a torch.where over whole, contiguous tensors. Before a case is written its gradients are
checked by finite differences (torch.autograd.gradcheck, float64), and the stopping rule is asserted to be far from
its threshold (so the finite differences, and a float32 rerun, take the same number of updates).

Semantics that differ from hflayers where hflayers has a bug (see nn/hopfield/hopfield.cpp): a per-head β gives
head h exactly β_h; static patterns are repeated per head (not along the batch axis); concat_bias_pattern really
appends the learned patterns.

File format: that of scripts/make_fixtures.py. Names: `<case>.param.<name>` are the parameters under the C++
module's named_parameters() names (hflayers' state_dict names); `<case>.stored`, `.state`, `.projection` the
inputs (`<case>.input` when one tensor is all three); `<case>.padding_mask`, `<case>.association_mask`;
`<case>.out`, `<case>.association` (ξ [B, H, L, S′]), `<case>.update_steps` (updates per head, int64);
`<case>.grad_out` the upstream gradient and `d<case>.out/<case>.<x>` the gradient of Σ grad_out ⊙ out.

Cases (all float64, dropout 0):
  fused_self        input 6, 2 heads, the three LayerNorms (affine), fused in_proj, one tensor for all three,
                    padding mask, update_steps_max 0 (plain attention).
  separate_iterated stored 5 / state 6 / projection 3 wide, hidden 4, pattern 2, 2 heads, update_steps_max 3 with
                    eps 1e-4, Hopfield-space LayerNorm with affine, 2-D bool association mask with a fully masked
                    row, β = 0.9.
  static_connected  static state patterns (width = hidden 3), connected pattern projection, zero association,
                    3-D float association mask, 2 heads, update_steps_max 2, β = 0.7, no input LayerNorms.
  static_per_head   static stored patterns and pattern projections, per-head β (0.5, 2.0), update_steps_max None
                    with eps 0.018, disable_out_projection, association_activation tanh, stored LayerNorm without
                    affine.
  bias_pattern      concat_bias_pattern, sequence-first (batch_first false), 3 heads, update_steps_max 1,
                    no input bias.
  pooled            HopfieldPooling's shape: one state pattern per sample against 9 stored patterns, stored 5 /
                    state 6 / projection 3 wide, hidden 4, pattern 2, 2 heads, per-head β (0.5, 2.0), the three
                    LayerNorms, padding mask with one sample fully masked (the C++ layer folds the key and value
                    projections into the query here).
  pooled_one_head   two state patterns against 12 stored, 1 head, fused in_proj (width 6), a 2-D bool association
                    mask.
"""

import math
import pathlib
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_fixtures import generator, normal, uniform, write_or_check  # noqa: E402

EPS_MARGIN = 1.05  # the stopping rule's change must differ from eps by this factor (either way)


def config(**kw):
    c = dict(input_size=None, hidden_size=None, output_size=None, pattern_size=None, heads=1, scaling=None,
             update_steps_max=0, update_steps_eps=1e-4, norm_stored=True, norm_stored_affine=True,
             norm_state=True, norm_state_affine=True, norm_projection=True, norm_projection_affine=True,
             norm_space=False, norm_space_affine=False, stored_static=False, state_static=False,
             projection_static=False, connected=False, stored_size=None, projection_size=None, batch_first=True,
             activation=None, input_bias=True, bias_pattern=False, zero_association=False, disable_out=False)
    c.update(kw)
    E, H = c["input_size"], c["heads"]
    c["dk"] = c["hidden_size"] or E // H
    c["dv"] = c["pattern_size"] or c["dk"]
    c["kdim"] = c["stored_size"] or E
    c["vdim"] = c["projection_size"] or E
    c["out_dim"] = H * c["dv"] if c["disable_out"] else (c["output_size"] or E)
    c["fused"] = c["kdim"] == E and c["vdim"] == E and c["pattern_size"] is None and not c["connected"]
    return c


def parameter_shapes(c):
    """{name: shape} in the C++ module's registration order (hflayers' HopfieldCore, then the LayerNorms)."""
    H, E, dk, dv = c["heads"], c["input_size"], c["dk"], c["dv"]
    hd, vpd = H * dk, H * dv
    qs, ks, vs = c["state_static"], c["stored_static"], c["projection_static"]
    shapes = {}
    if c["norm_space_affine"]:
        shapes["association_core.p_norm_weight"] = (dk,)
        shapes["association_core.p_norm_bias"] = (dk,)
    rows = (not qs) * hd + (not ks) * hd + (not vs) * vpd
    if c["fused"]:
        if rows:
            shapes["association_core.in_proj_weight"] = (rows, E)
    else:
        if not qs:
            shapes["association_core.q_proj_weight"] = (hd, E)
        if not ks:
            shapes["association_core.k_proj_weight"] = (hd, c["kdim"])
        if not vs:
            shapes["association_core.v_proj_weight"] = (vpd, hd if c["connected"] else c["vdim"])
    if c["input_bias"] and rows:
        shapes["association_core.in_proj_bias"] = (rows,)
    if not c["disable_out"]:
        shapes["association_core.out_proj.weight"] = (c["out_dim"], vpd)
        if c["input_bias"]:
            shapes["association_core.out_proj.bias"] = (c["out_dim"],)
    if c["bias_pattern"]:
        shapes["association_core.bias_k"] = (1, 1, hd)
        shapes["association_core.bias_v"] = (1, 1, vpd)
    for key, width in (("stored", c["kdim"]), ("state", E), ("projection", c["vdim"])):
        if c[f"norm_{key}"] and c[f"norm_{key}_affine"]:
            name = {"stored": "stored_pattern", "state": "state_pattern", "projection": "pattern_projection"}[key]
            shapes[f"norm_{name}.weight"] = (width,)
            shapes[f"norm_{name}.bias"] = (width,)
    return shapes


def associate(c, p, stored, state, projection, padding_mask=None, association_mask=None, trace=None):
    """Spec A.3. Returns (output, ξ [B, H, L, S′], update steps per head). `trace` collects the stopping-rule
    changes (for the margin check)."""
    H, dk, dv = c["heads"], c["dk"], c["dv"]
    hd, vpd = H * dk, H * dv
    qs, ks, vs = c["state_static"], c["stored_static"], c["projection_static"]
    # 1. sequence-first [N, B, features]
    if c["batch_first"]:
        stored, state, projection = stored.transpose(0, 1), state.transpose(0, 1), projection.transpose(0, 1)
    L, B, S = state.shape[0], state.shape[1], stored.shape[0]

    # 2. the three LayerNorms
    def norm(x, key, name):
        if not c[f"norm_{key}"]:
            return x
        return F.layer_norm(x, (x.shape[-1],), p.get(f"norm_{name}.weight"), p.get(f"norm_{name}.bias"), 1e-5)
    stored = norm(stored, "stored", "stored_pattern")
    state = norm(state, "state", "state_pattern")
    projection = norm(projection, "projection", "pattern_projection")

    # 3. projections; static components are repeated H times along the features
    k_off = (not qs) * hd
    v_off = k_off + (not ks) * hd
    bias = p.get("association_core.in_proj_bias")

    def w(name, off, rows):
        return p["association_core.in_proj_weight"][off:off + rows] if c["fused"] else p[f"association_core.{name}"]

    def b(off, rows):
        return None if bias is None else bias[off:off + rows]
    q = state.repeat(1, 1, H) if qs else F.linear(state, w("q_proj_weight", 0, hd), b(0, hd))
    k = stored.repeat(1, 1, H) if ks else F.linear(stored, w("k_proj_weight", k_off, hd), b(k_off, hd))
    v = F.linear(projection, p["association_core.k_proj_weight"], b(k_off, hd)) if c["connected"] else projection
    if not vs:
        v = F.linear(v, w("v_proj_weight", v_off, vpd), b(v_off, vpd))
    elif not c["connected"]:
        v = v.repeat(1, 1, H)

    # 4. Hopfield-space LayerNorm of q and k per head, shared affine, once
    if c["norm_space"]:
        q = F.layer_norm(q.reshape(-1, dk), (dk,), p.get("association_core.p_norm_weight"),
                         p.get("association_core.p_norm_bias"), 1e-5).reshape(q.shape)
        k = F.layer_norm(k.reshape(-1, dk), (dk,), p.get("association_core.p_norm_weight"),
                         p.get("association_core.p_norm_bias"), 1e-5).reshape(k.shape)

    # masks as [B·H, L, S]: bool (True = excluded) and float (added)
    excluded = torch.zeros(B * H, L, S, dtype=torch.bool)
    added = torch.zeros(B * H, L, S, dtype=torch.float64)
    if padding_mask is not None:
        excluded = excluded | padding_mask.repeat_interleave(H, dim=0).unsqueeze(1)
    if association_mask is not None:
        m = association_mask if association_mask.dim() == 3 else association_mask.unsqueeze(0)
        if m.dtype == torch.bool:
            excluded = excluded | m
        else:
            added = added + m
    extra = 0
    if c["bias_pattern"]:  # learned patterns appended to the sequences (never masked)
        k = torch.cat([k, p["association_core.bias_k"].expand(1, B, hd)])
        v = torch.cat([v, p["association_core.bias_v"].expand(1, B, vpd)])
        extra += 1

    # 6. rows b·H + h
    q = q.reshape(L, B * H, dk).transpose(0, 1).contiguous()
    k = k.reshape(-1, B * H, dk).transpose(0, 1).contiguous()
    v = v.reshape(-1, B * H, dv).transpose(0, 1).contiguous()
    if c["zero_association"]:
        k = torch.cat([k, torch.zeros(B * H, 1, dk, dtype=k.dtype)], dim=1)
        v = torch.cat([v, torch.zeros(B * H, 1, dv, dtype=v.dtype)], dim=1)
        extra += 1
    excluded = F.pad(excluded, (0, extra), value=False)
    added = F.pad(added, (0, extra), value=0.0)
    S2 = k.shape[1]
    fully_masked = excluded.all(dim=-1, keepdim=True)

    # 5. β per row
    head_of_row = torch.arange(B * H) % H
    scaling = c["scaling"] if c["scaling"] is not None else 1.0 / math.sqrt(dk)
    beta = (torch.tensor(scaling, dtype=torch.float64)[head_of_row].view(-1, 1, 1)
            if isinstance(scaling, (list, tuple)) else scaling)

    # 7–10. iterate
    active = [True] * H
    steps = [0] * H
    xi, step = None, 0
    while True:
        rows = torch.tensor([active[h] for h in head_of_row.tolist()]).view(-1, 1, 1)
        if step > 0:
            q = torch.where(rows, torch.bmm(xi, k), q)  # 10. ξ ← ξ K for the active heads
        scores = torch.bmm(q * beta, k.transpose(1, 2)) + added
        scores = scores.masked_fill(excluded, -math.inf).masked_fill(fully_masked, 0.0)
        new = torch.softmax(scores, dim=-1).masked_fill(fully_masked, 0.0)
        old = xi
        xi = new if xi is None else torch.where(rows, new, xi)
        # 9. stopping rule, per head
        below = c["update_steps_max"] is None or step < c["update_steps_max"]
        following = []
        if below:
            if step == 0:
                following = [h for h in range(H) if active[h]]
            else:
                with torch.no_grad():
                    change = (xi - old).reshape(B, H, L, S2).norm(dim=(2, 3)).amax(dim=0)
                for h in range(H):
                    if active[h]:
                        if trace is not None:
                            trace.append(float(change[h]))
                        if change[h] > c["update_steps_eps"]:
                            following.append(h)
        if not following:
            break
        for h in following:
            steps[h] += 1
        active = [h in following for h in range(H)]
        step += 1
        assert step < 1000, "no convergence"

    # 11. values and out-projection
    out = torch.bmm(xi, v).transpose(0, 1).reshape(L, B, H * dv)
    if not c["disable_out"]:
        out = F.linear(out, p["association_core.out_proj.weight"], p.get("association_core.out_proj.bias"))
    # 12.
    if c["batch_first"]:
        out = out.transpose(0, 1)
    if c["activation"]:
        out = getattr(torch, c["activation"])(out)
    return out, xi.reshape(B, H, L, S2), steps


def make_case(case, c, gen, inputs, masks, one_input=False):
    params = {name: uniform(gen, *shape, lo=-0.8, hi=0.8) for name, shape in parameter_shapes(c).items()}
    for name in params:  # LayerNorm scales near 1, as after training
        if name.endswith("p_norm_weight") or (name.startswith("norm_") and name.endswith(".weight")):
            params[name] = 1.0 + 0.3 * params[name]
    names = list(inputs) + list(params)
    leaves = [t.clone().requires_grad_(True) for t in list(inputs.values()) + list(params.values())]

    def run(*tensors, trace=None):
        x = dict(zip(names, tensors))
        if one_input:
            stored = state = projection = x["input"]
        else:
            stored, state, projection = x["stored"], x["state"], x["projection"]
        return associate(c, {n: x[n] for n in params}, stored, state, projection, trace=trace, **masks)

    trace = []
    out, xi, steps = run(*leaves, trace=trace)
    for change in trace:  # far from the threshold: the update count is stable under perturbation
        assert change > c["update_steps_eps"] * EPS_MARGIN or change < c["update_steps_eps"] / EPS_MARGIN, \
            f"{case}: stopping-rule change {change} too close to eps {c['update_steps_eps']}"
    assert torch.autograd.gradcheck(lambda *t: run(*t)[0], leaves, eps=1e-6, atol=1e-7, rtol=1e-5), case
    grad_out = normal(gen, *out.shape)
    grads = torch.autograd.grad(out, leaves, grad_out)

    tensors = {f"{case}.{n}": t for n, t in inputs.items()}
    tensors.update({f"{case}.{n}": m for n, m in masks.items() if m is not None})
    tensors.update({f"{case}.param.{n}": t for n, t in params.items()})
    tensors[f"{case}.out"] = out.detach()
    tensors[f"{case}.association"] = xi.detach()
    tensors[f"{case}.update_steps"] = torch.tensor(steps, dtype=torch.int64)
    tensors[f"{case}.grad_out"] = grad_out
    for n, g in zip(names, grads):
        key = f"{case}.param.{n}" if n in params else f"{case}.{n}"
        tensors[f"d{case}.out/{key}"] = g
    return tensors


def hopfield_layers():
    gen = generator(4404)
    tensors = {}

    c = config(input_size=6, heads=2)
    x = normal(gen, 2, 4, 6)
    padding = torch.tensor([[False, False, True, False], [False, False, False, False]])
    tensors.update(make_case("fused_self", c, gen, {"input": x}, {"padding_mask": padding}, one_input=True))

    c = config(input_size=6, stored_size=5, projection_size=3, hidden_size=4, pattern_size=2, heads=2,
               update_steps_max=3, norm_space=True, norm_space_affine=True, scaling=0.9)
    mask = torch.tensor([[False, True, False, False, True],
                         [True, True, True, True, True],
                         [False, False, False, True, False]])
    tensors.update(make_case("separate_iterated", c, gen,
                             {"stored": normal(gen, 2, 5, 5) * 2, "state": normal(gen, 2, 3, 6) * 2,
                              "projection": normal(gen, 2, 5, 3)},
                             {"association_mask": mask}))

    c = config(input_size=6, hidden_size=3, heads=2, state_static=True, connected=True, zero_association=True,
               update_steps_max=2, scaling=0.7, norm_stored=False, norm_state=False, norm_projection=False,
               norm_stored_affine=False, norm_state_affine=False, norm_projection_affine=False)
    tensors.update(make_case("static_connected", c, gen,
                             {"stored": normal(gen, 2, 4, 6), "state": normal(gen, 2, 3, 3),
                              "projection": normal(gen, 2, 4, 6)},
                             {"association_mask": uniform(gen, 4, 3, 4)}))

    c = config(input_size=4, hidden_size=4, heads=2, stored_static=True, projection_static=True,
               scaling=[0.5, 2.0], update_steps_max=None, update_steps_eps=0.018, disable_out=True,
               activation="tanh", norm_stored_affine=False, norm_state=False, norm_state_affine=False,
               norm_projection=False, norm_projection_affine=False)
    tensors.update(make_case("static_per_head", c, gen,
                             {"stored": normal(gen, 2, 5, 4) * 1.5, "state": normal(gen, 2, 2, 4),
                              "projection": normal(gen, 2, 5, 4)},
                             {"padding_mask": torch.tensor([[False] * 5, [False, False, False, False, True]])}))

    c = config(input_size=6, heads=3, bias_pattern=True, batch_first=False, update_steps_max=1, input_bias=False)
    tensors.update(make_case("bias_pattern", c, gen,
                             {"stored": normal(gen, 4, 2, 6), "state": normal(gen, 3, 2, 6),
                              "projection": normal(gen, 4, 2, 6)}, {}))

    c = config(input_size=6, stored_size=5, projection_size=3, hidden_size=4, pattern_size=2, heads=2,
               scaling=[0.5, 2.0])
    padding = torch.zeros(3, 9, dtype=torch.bool)
    padding[0, 6:] = True
    padding[2, :] = True
    tensors.update(make_case("pooled", c, gen,
                             {"stored": normal(gen, 3, 9, 5), "state": normal(gen, 3, 1, 6),
                              "projection": normal(gen, 3, 9, 3)},
                             {"padding_mask": padding}))

    c = config(input_size=6, scaling=0.8)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[0, 3:5] = True
    mask[1, 0] = True
    tensors.update(make_case("pooled_one_head", c, gen,
                             {"stored": normal(gen, 2, 12, 6), "state": normal(gen, 2, 2, 6),
                              "projection": normal(gen, 2, 12, 6)},
                             {"association_mask": mask}))

    return ("Hopfield layer association (spec A.3) for the cases listed in scripts/make_hopfield_fixtures.py; "
            "outputs, association matrices, update counts and gradients of Σ grad_out ⊙ out", tensors)


if __name__ == "__main__":
    write_or_check([("hopfield_layers", hopfield_layers)], script="scripts/make_hopfield_fixtures.py")
