"""Optimiser, schedule, clipping and loss math of meteor's train layer vs PyTorch, transformers
and TRL.

build/tools/train_math runs the C code on a JSON spec (see tests/tools/train_math.c). The
references: torch.optim.AdamW + transformers' warmup schedules + torch.nn.utils.clip_grad_norm_,
torch.nn.functional.cross_entropy with autograd, the margin ranking loss written here from its
formula, and TRL's own DPOTrainer._compute_loss for the sigmoid DPO loss and its SFT term.

Tolerances: parameters, moments and gradients are float32 in both, so they are compared with
1e-6 absolute on O(1) values; learning rates and norms 1e-6 relative (meteor hands the optimiser
a float learning rate); preference losses are double on both sides and agree to 1e-12.
"""
import json
import subprocess
import types
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "build" / "tools" / "train_math"

SCHEDULES = {
    "constant": lambda opt, w, t: transformers.get_constant_schedule_with_warmup(opt, w),
    "linear": lambda opt, w, t: transformers.get_linear_schedule_with_warmup(opt, w, t),
    "cosine": lambda opt, w, t: transformers.get_cosine_schedule_with_warmup(opt, w, t),
}


def run_tool(spec, ok=True):
    if not TOOL.is_file():
        pytest.fail(f"{TOOL} is missing: build it with `make`", pytrace=False)
    proc = subprocess.run([str(TOOL)], input=json.dumps(spec), capture_output=True, text=True,
                          timeout=120)
    out = json.loads(proc.stdout)
    if ok:
        assert proc.returncode == 0, out.get("error", proc.stderr)
    return out


def reference_scheduler(opt, kind, warmup, total, min_ratio):
    if min_ratio:
        assert kind == "cosine", "transformers has a floor only for the cosine schedule"
        return transformers.get_cosine_with_min_lr_schedule_with_warmup(
            opt, warmup, total, min_lr_rate=min_ratio)
    return SCHEDULES[kind](opt, warmup, total)


def max_rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def max_abs(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def torch_adamw_run(params0, decay, grads, hp, sched, max_norm):
    """torch.optim.AdamW (single-tensor path) with a transformers schedule and clipping."""
    params = [torch.nn.Parameter(torch.tensor(p, dtype=torch.float32)) for p in params0]
    groups = [
        {"params": [p for p, d in zip(params, decay) if d], "weight_decay": hp["weight_decay"]},
        {"params": [p for p, d in zip(params, decay) if not d], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=hp["lr"], betas=tuple(hp["betas"]), eps=hp["eps"],
                            foreach=False)
    sch = reference_scheduler(opt, sched["kind"], sched["warmup"], sched["total"],
                              sched.get("min_ratio", 0.0))
    steps = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g, dtype=torch.float32)
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if max_norm > 0 else None
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sch.step()
        steps.append({"lr": lr, "norm": None if norm is None else float(norm),
                      "params": [p.detach().numpy().copy() for p in params]})
    state = [opt.state[p] for p in params]
    return steps, [s["exp_avg"].numpy() for s in state], [s["exp_avg_sq"].numpy() for s in state]


def random_problem(seed, n_steps, shapes=((7, 5), (11,), (3,)), grad_scale=(0.05, 3.0)):
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = []
    for _ in range(n_steps):
        # Scales both below and above max_norm, so clipping is sometimes a no-op.
        scale = rng.uniform(*grad_scale)
        grads.append([(rng.normal(size=s) * scale / np.sqrt(np.prod(s))).astype(np.float32)
                      for s in shapes])
    return params, grads


@pytest.mark.parametrize("kind,min_ratio", [("cosine", 0.0), ("linear", 0.0),
                                            ("constant", 0.0), ("cosine", 0.1)])
def test_adamw_with_schedule_and_clipping_matches_torch(kind, min_ratio):
    n_steps = 9
    params, grads = random_problem(seed=11, n_steps=n_steps)
    decay = [1, 1, 0]
    hp = {"lr": 1e-2, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}
    sched = {"kind": kind, "warmup": 3, "total": n_steps, "min_ratio": min_ratio}
    max_norm = 1.0
    out = run_tool({"op": "adamw", "params": [p.ravel().tolist() for p in params],
                    "decay": decay, "grads": [[g.ravel().tolist() for g in s] for s in grads],
                    "schedule": sched, "max_norm": max_norm, **hp})
    ref, ref_m, ref_v = torch_adamw_run(params, decay, grads, hp, sched, max_norm)
    assert out["step"] == n_steps
    clipped = 0
    worst = defaultdict(float)
    for mine, theirs in zip(out["steps"], ref):
        worst["lr"] = max(worst["lr"], abs(mine["lr"] - theirs["lr"]) / max(theirs["lr"], 1e-30)
                          if theirs["lr"] else abs(mine["lr"]))
        worst["norm"] = max(worst["norm"], max_rel(mine["norm"], theirs["norm"]))
        clipped += theirs["norm"] > max_norm
        for a, b in zip(mine["params"], theirs["params"]):
            worst["params"] = max(worst["params"], max_abs(a, b.ravel()))
    for a, b in zip(out["m"], ref_m):
        worst["m"] = max(worst["m"], max_abs(a, b.ravel()))
    for a, b in zip(out["v"], ref_v):
        worst["v"] = max(worst["v"], max_abs(a, b.ravel()))
    print(f"adamw {kind} min_ratio={min_ratio}: clipped {clipped}/{n_steps} steps, "
          + ", ".join(f"max diff {k} {v:.3g}" for k, v in worst.items()))
    assert 0 < clipped < n_steps
    assert worst["lr"] <= 1e-6 and worst["norm"] <= 1e-6
    assert worst["params"] <= 1e-6 and worst["m"] <= 1e-6 and worst["v"] <= 1e-6


def test_adamw_torch_defaults_without_clipping():
    params, grads = random_problem(seed=5, n_steps=6, shapes=((64,), (4, 4)))
    hp = {"lr": 3e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01}
    sched = {"kind": "constant", "warmup": 0, "total": 0}
    out = run_tool({"op": "adamw", "params": [p.ravel().tolist() for p in params],
                    "grads": [[g.ravel().tolist() for g in s] for s in grads], **hp})
    ref, _, _ = torch_adamw_run(params, [1, 1], grads, hp, sched, 0.0)
    worst = max(max_abs(a, b.ravel()) for m, t in zip(out["steps"], ref)
                for a, b in zip(m["params"], t["params"]))
    print(f"adamw defaults, no clipping: max param diff {worst:.3g}")
    assert worst <= 1e-6


def test_gradient_accumulation_averages_micro_batches():
    """k micro-batch gradients summed then scaled by 1/k == torch stepping on their mean."""
    k, n_steps = 4, 3
    rng = np.random.default_rng(3)
    params = [rng.normal(size=(6,)).astype(np.float32)]
    micro = [[[rng.normal(size=(6,)).astype(np.float32)] for _ in range(k)]
             for _ in range(n_steps)]
    mean = [[np.mean([m[0] for m in step], axis=0, dtype=np.float32)] for step in micro]
    hp = {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0}
    out = run_tool({"op": "adamw", "params": [params[0].tolist()], "accum": k,
                    "grads": [[[g.tolist() for g in m] for m in step] for step in micro], **hp})
    ref, _, _ = torch_adamw_run(params, [1], mean, hp,
                                {"kind": "constant", "warmup": 0, "total": 0}, 0.0)
    worst = max(max_abs(m["params"][0], t["params"][0]) for m, t in zip(out["steps"], ref))
    print(f"gradient accumulation x{k}: max param diff {worst:.3g}")
    assert worst <= 1e-6


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
@pytest.mark.parametrize("warmup,total", [(0, 10), (3, 10), (1, 1), (5, 17)])
def test_schedule_factors_match_transformers(kind, warmup, total):
    steps = total + 3  # a little past the end, where transformers' own rules still apply
    out = run_tool({"op": "schedule", "kind": kind, "lr": 1.0, "warmup": warmup,
                    "total": total, "steps": steps})
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sch = SCHEDULES[kind](opt, warmup, total)
    ref = []
    for _ in range(steps):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert max_abs(out["factors"], ref) <= 1e-12


def test_cosine_floor_matches_transformers_min_lr_schedule():
    out = run_tool({"op": "schedule", "kind": "cosine", "lr": 1.0, "warmup": 4, "total": 20,
                    "min_ratio": 0.15, "steps": 21})
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sch = transformers.get_cosine_with_min_lr_schedule_with_warmup(opt, 4, 20, min_lr_rate=0.15)
    ref = []
    for _ in range(21):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert max_abs(out["factors"], ref) <= 1e-12


@pytest.mark.parametrize("max_norm", [0.5, 1.0, 100.0])
def test_clip_matches_clip_grad_norm(max_norm):
    rng = np.random.default_rng(int(max_norm * 10))
    grads = [rng.normal(size=s).astype(np.float32) * 0.3 for s in [(50,), (7, 3), (1,)]]
    out = run_tool({"op": "clip", "max_norm": max_norm,
                    "grads": [g.ravel().tolist() for g in grads]})
    params = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g)
    norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    worst = max(max_abs(a, p.grad.numpy().ravel()) for a, p in zip(out["grads"], params))
    print(f"clip max_norm={max_norm}: norm {norm:.6g} rel diff {max_rel(out['norm'], norm):.3g}, "
          f"max grad diff {worst:.3g}")
    assert max_rel(out["norm"], norm) <= 1e-6
    assert worst <= 1e-7


def ce_case(seed, rows, vocab, spread):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(rows, vocab)) * spread).astype(np.float32)
    logits[1] += 1e4  # a large offset must change nothing but the offset itself
    logits[2, 5] = 80.0  # a confident row: p(target) ~ 1, gradient by cancellation
    targets = rng.integers(0, vocab, size=rows)
    targets[2] = 5
    targets[::7] = -100
    return logits, targets


@pytest.mark.parametrize("grad_scale", [1.0, -0.37])
def test_cross_entropy_matches_torch(grad_scale):
    logits, targets = ce_case(seed=7, rows=37, vocab=101, spread=4.0)
    out = run_tool({"op": "ce", "logits": logits.tolist(), "targets": targets.tolist(),
                    "grad_scale": grad_scale})
    worst = {}
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor(logits, dtype=dtype, requires_grad=True)
        t = torch.tensor(targets)
        loss = F.cross_entropy(x, t, ignore_index=-100, reduction="sum")
        (loss * grad_scale).backward()
        per_row = -F.cross_entropy(x.detach(), t, ignore_index=-100, reduction="none")
        name = str(dtype).split(".")[-1]
        worst[name] = (max_rel(out["loss_sum"], loss.item()),
                       max_abs(out["logprobs"], per_row.numpy()),
                       max_abs(out["dlogits"], x.grad.numpy()))
    print(f"ce grad_scale={grad_scale}: " + "; ".join(
        f"vs torch {k}: loss rel {a:.3g}, logprob abs {b:.3g}, dlogits abs {c:.3g}"
        for k, (a, b, c) in worst.items()))
    assert out["logprobs_nograd"] == out["logprobs"]
    assert abs(out["sum_nograd"] + out["loss_sum"]) <= 1e-9 * abs(out["loss_sum"])
    for rel_loss, lp, dl in worst.values():
        assert rel_loss <= 1e-6 and lp <= 2e-5 and dl <= 1e-6
    assert worst["float64"][1] <= 2e-6  # per-row log-probs vs the exact value


def test_cross_entropy_row_scales_and_all_ignored():
    logits, targets = ce_case(seed=8, rows=9, vocab=13, spread=2.0)
    scales = np.linspace(-1, 2, 9).astype(np.float32)
    out = run_tool({"op": "ce", "logits": logits.tolist(), "targets": targets.tolist(),
                    "grad_scale": 0.5, "row_scale": scales.tolist()})
    x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    nll = F.cross_entropy(x, torch.tensor(targets), ignore_index=-100, reduction="none")
    (nll * torch.tensor(scales, dtype=torch.float64) * 0.5).sum().backward()
    assert max_rel(out["loss_sum"], nll.sum().item()) <= 1e-6
    assert max_abs(out["dlogits"], x.grad.numpy()) <= 1e-6

    out = run_tool({"op": "ce", "logits": logits[:3].tolist(), "targets": [-100] * 3})
    x = torch.tensor(logits[:3], requires_grad=True)
    loss = F.cross_entropy(x, torch.full((3,), -100), ignore_index=-100, reduction="sum")
    loss.backward()
    assert out["loss_sum"] == loss.item() == 0.0
    assert np.array_equal(np.array(out["dlogits"]), x.grad.numpy())


def preference_case(seed, n_pairs):
    rng = np.random.default_rng(seed)
    n_c = rng.integers(1, 40, size=n_pairs)
    n_r = rng.integers(1, 40, size=n_pairs)
    lp_c = -rng.uniform(0.2, 3.0, size=n_pairs) * n_c
    lp_r = -rng.uniform(0.2, 3.0, size=n_pairs) * n_r
    ref_c = lp_c + rng.normal(size=n_pairs) * 3
    ref_r = lp_r + rng.normal(size=n_pairs) * 3
    return dict(lp_chosen=lp_c.tolist(), lp_rejected=lp_r.tolist(), n_chosen=n_c.tolist(),
                n_rejected=n_r.tolist(), ref_chosen=ref_c.tolist(), ref_rejected=ref_r.tolist())


def torch_margin_loss(case, margin, sft_weight):
    """The METEOR margin ranking loss written from its formula, with autograd."""
    lp_c = torch.tensor(case["lp_chosen"], dtype=torch.float64, requires_grad=True)
    lp_r = torch.tensor(case["lp_rejected"], dtype=torch.float64, requires_grad=True)
    n_c = torch.tensor(case["n_chosen"], dtype=torch.float64)
    n_r = torch.tensor(case["n_rejected"], dtype=torch.float64)
    nll_c, nll_r = -lp_c / n_c, -lp_r / n_r
    loss = torch.relu(nll_c - nll_r + margin).mean()
    if sft_weight:
        loss = loss + sft_weight * (-lp_c.sum() / n_c.sum())
    loss.backward()
    return loss.item(), lp_c.grad.numpy(), lp_r.grad.numpy(), (-nll_c).detach(), (-nll_r).detach()


@pytest.mark.parametrize("margin,sft_weight", [(0.5, 0.0), (0.1, 0.0), (1.0, 0.3)])
def test_margin_loss_matches_formula(margin, sft_weight):
    case = preference_case(seed=21, n_pairs=16)
    # Pair 0 sits exactly on the hinge: nll_c - nll_r + margin == 0 (relu'(0) = 0 in torch).
    case["lp_chosen"][0], case["n_chosen"][0] = -2.0, 2
    case["lp_rejected"][0], case["n_rejected"][0] = -2.0 * (1 + margin), 2
    out = run_tool({"op": "margin", "margin": margin, "sft_weight": sft_weight, **case})
    loss, d_c, d_r, r_c, r_r = torch_margin_loss(case, margin, sft_weight)
    active = sum(1 for a, b, nc, nr in zip(case["lp_chosen"], case["lp_rejected"],
                                           case["n_chosen"], case["n_rejected"])
                 if -a / nc + b / nr + margin > 0)
    print(f"margin={margin} sft={sft_weight}: {active}/16 pairs active, loss diff "
          f"{abs(out['loss'] - loss):.3g}, grad diff "
          f"{max(max_abs(out['d_chosen'], d_c), max_abs(out['d_rejected'], d_r)):.3g}")
    assert 0 < active < 16
    assert out["d_chosen"][0] == pytest.approx(d_c[0], abs=0)
    assert abs(out["loss"] - loss) <= 1e-12
    assert max_abs(out["d_chosen"], d_c) <= 1e-12 and max_abs(out["d_rejected"], d_r) <= 1e-12
    assert out["rewards_chosen"] == pytest.approx(float(r_c.mean()), abs=1e-12)
    assert out["rewards_rejected"] == pytest.approx(float(r_r.mean()), abs=1e-12)
    assert out["accuracy"] == pytest.approx(float((r_c > r_r).double().mean()), abs=0)


def trl_dpo_loss(case, beta, sft_weight):
    """TRL's DPOTrainer._compute_loss on the same log-probs, run through a stand-in trainer.

    The policy's per-token log-probs are random numbers whose sums over the completion mask are
    the case's sequence log-probs (padding positions hold 0, as TRL's fused head gives for
    labels -100); reference log-probs are precomputed, as meteor stores them. Returns the loss,
    dL/d(sequence log-prob sum) for chosen and rejected, and TRL's logged metrics."""
    from trl.trainer.dpo_trainer import DPOTrainer

    n_pairs = len(case["lp_chosen"])
    counts = case["n_chosen"] + case["n_rejected"]
    sums = case["lp_chosen"] + case["lp_rejected"]
    seq = max(counts) + 3
    rng = np.random.default_rng(99)
    mask = np.zeros((2 * n_pairs, seq + 1))
    tok = np.zeros((2 * n_pairs, seq))
    for i, (n, s) in enumerate(zip(counts, sums)):
        start = 2 + i % 2  # a short prompt of varying length, then the answer, then padding
        mask[i, start:start + n] = 1
        w = rng.uniform(0.5, 1.5, size=n)
        tok[i, start - 1:start - 1 + n] = s * w / w.sum()
    tok_t = torch.tensor(tok, dtype=torch.float64, requires_grad=True)
    shift_mask = torch.tensor(mask[:, 1:], dtype=torch.float64)
    log_probs = tok_t * shift_mask
    outputs = types.SimpleNamespace(
        log_probs=log_probs, entropy=torch.zeros_like(log_probs),
        mean_logits=torch.zeros_like(log_probs), is_top1=torch.zeros_like(log_probs).bool())
    losses = ["sigmoid"] + (["sft"] if sft_weight else [])
    metrics = defaultdict(lambda: defaultdict(list))
    accel = types.SimpleNamespace(device=torch.device("cpu"), gather=lambda x: x,
                                  gather_for_metrics=lambda x: x)
    trainer = types.SimpleNamespace(
        model=types.SimpleNamespace(training=True), accelerator=accel, aux_loss_enabled=False,
        ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl",
        loss_types=losses, loss_weights=[1.0] + ([sft_weight] if sft_weight else []), beta=beta,
        label_smoothing=0.0, use_weighting=False, _metrics=metrics, _total_train_tokens=0,
        _tp_size=1, args=types.SimpleNamespace())
    inputs = {
        "input_ids": torch.zeros((2 * n_pairs, seq + 1), dtype=torch.long),
        "attention_mask": torch.ones((2 * n_pairs, seq + 1), dtype=torch.long),
        "completion_mask": torch.tensor(mask, dtype=torch.long),
        "ref_chosen_logps": torch.tensor(case["ref_chosen"], dtype=torch.float64),
        "ref_rejected_logps": torch.tensor(case["ref_rejected"], dtype=torch.float64),
    }
    loss = DPOTrainer._compute_loss(trainer, lambda **kw: outputs, inputs, False)
    loss.backward()
    # Every completion token of a sequence carries dL/d(its sum); take the first one.
    first = [int(np.argmax(mask[i, 1:])) for i in range(2 * n_pairs)]
    d = np.array([tok_t.grad[i, first[i]].item() for i in range(2 * n_pairs)])
    # The stand-in reproduces the sums exactly enough for a 1e-12 comparison.
    assert np.allclose(log_probs.detach().sum(1).numpy(), sums, rtol=0, atol=1e-12)
    return loss.item(), d[:n_pairs], d[n_pairs:], {k: v[0] for k, v in metrics["train"].items()}


@pytest.mark.parametrize("beta,sft_weight", [(0.1, 0.0), (0.5, 0.0), (0.1, 0.2)])
def test_dpo_matches_trl(beta, sft_weight):
    case = preference_case(seed=31, n_pairs=12)
    out = run_tool({"op": "dpo", "beta": beta, "sft_weight": sft_weight, **case})
    loss, d_c, d_r, logged = trl_dpo_loss(case, beta, sft_weight)
    print(f"dpo beta={beta} sft={sft_weight} vs TRL: loss diff {abs(out['loss'] - loss):.3g}, "
          f"grad diff {max(max_abs(out['d_chosen'], d_c), max_abs(out['d_rejected'], d_r)):.3g}")
    assert abs(out["loss"] - loss) <= 1e-12
    assert max_abs(out["d_chosen"], d_c) <= 1e-12 and max_abs(out["d_rejected"], d_r) <= 1e-12
    for mine, theirs in [("rewards_chosen", "rewards/chosen"),
                         ("rewards_rejected", "rewards/rejected"),
                         ("reward_margin", "rewards/margins"), ("logps_chosen", "logps/chosen"),
                         ("logps_rejected", "logps/rejected")]:
        assert out[mine] == pytest.approx(logged[theirs], rel=1e-12, abs=1e-12), mine
    # TRL averages the 0/1 wins in float32.
    assert out["accuracy"] == pytest.approx(logged["rewards/accuracies"], abs=1e-7)
    assert 0 < out["accuracy"] < 1


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
def test_dpo_label_smoothing_matches_formula(label_smoothing):
    """Conservative DPO: -(1-ls) logsigmoid(beta z) - ls logsigmoid(-beta z), the smoothing
    TRL's sigmoid loss applied up to TRL 0.x (TRL 1.x keeps it for "aot"/"robust" only)."""
    case = preference_case(seed=41, n_pairs=10)
    beta = 0.2
    out = run_tool({"op": "dpo", "beta": beta, "label_smoothing": label_smoothing, **case})
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k.startswith("lp"))
         for k, v in case.items()}
    z = (t["lp_chosen"] - t["ref_chosen"]) - (t["lp_rejected"] - t["ref_rejected"])
    loss = (-(1 - label_smoothing) * F.logsigmoid(beta * z)
            - label_smoothing * F.logsigmoid(-beta * z)).mean()
    loss.backward()
    assert abs(out["loss"] - loss.item()) <= 1e-12
    assert max_abs(out["d_chosen"], t["lp_chosen"].grad.numpy()) <= 1e-12
    assert max_abs(out["d_rejected"], t["lp_rejected"].grad.numpy()) <= 1e-12


def test_bad_specs_fail_with_one_message():
    case = preference_case(seed=1, n_pairs=2)
    case["n_chosen"][1] = 0
    out = run_tool({"op": "margin", "margin": 0.5, **case}, ok=False)
    assert "empty answer" in out["error"]
    out = run_tool({"op": "ce", "logits": [[0.0, 1.0]], "targets": [2]}, ok=False)
    assert "outside vocab" in out["error"]
    out = run_tool({"op": "schedule", "kind": "cosine", "warmup": 5, "total": 2}, ok=False)
    assert "warmup" in out["error"]
