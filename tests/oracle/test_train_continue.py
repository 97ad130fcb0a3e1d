"""Training that continues an earlier job (`meteor train --init-checkpoint / --init-adapter`),
on the real SmolLM2-135M-Instruct.

Job A trains a LoRA for a few steps; job B continues from A's checkpoint on other data. B's
steps count on from A's, and its first update is AdamW with the moments A left and the bias
correction at the cumulative step (checked against the formula on the saved w/m/v, and
against one uninterrupted run where the two are exactly the same computation). A continued
job killed with SIGKILL and resumed ends byte-identical to an uninterrupted one and refuses
another starting point. --init-adapter starts from the adapter's weights with fresh moments.
Bad starting points give one clear error.
"""
import json
import os
import shutil
import signal

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
LR = 2e-3
A_STEPS = 3
COMMON = ["--batch-size", 4, "--lora-rank", 4, "--lora-alpha", 8, "--lr", LR, "--schedule", "constant",
          "--threads", 2, "--quiet"]


def first_words(text, n=20):
    return " ".join(text.replace("\n", " ").split()[:n])


@pytest.fixture(scope="module")
def faq_sets(repo_root, tmp_path_factory):
    """Three disjoint SFT sets from the FAQ: a (job A), b (the continued jobs), one (a single pair)."""
    d = tmp_path_factory.mktemp("data")
    rows = [json.loads(l) for l in (repo_root / "data" / "python_faq.jsonl").read_text().splitlines()]
    sets = {"a": rows[:8], "b": rows[8:16], "one": rows[16:17]}
    paths = {}
    for name, rs in sets.items():
        paths[name] = d / f"{name}.jsonl"
        paths[name].write_text("".join(
            json.dumps({"question": r["title"], "answer": first_words(r["reference_answer"])}) + "\n" for r in rs))
    return paths


def metrics(out_dir):
    return [json.loads(l) for l in (out_dir / "metrics.jsonl").read_text().splitlines()]


def ckpt(out_dir):
    path = out_dir / "checkpoint.safetensors"
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    return load_file(str(path)), meta


def lora_names(tensors):
    return sorted(k[2:] for k in tensors if k.startswith("w."))


@pytest.fixture(scope="module")
def job_a(run_meteor, smollm_gguf, faq_sets, tmp_path_factory):
    out = tmp_path_factory.mktemp("job_a")
    run_meteor("train", "-m", smollm_gguf, "--data", faq_sets["a"], "--out", out, "--max-steps", A_STEPS,
               *COMMON)
    return out


def train(run_meteor, smollm_gguf, data, out, *extra, **kw):
    return run_meteor("train", "-m", smollm_gguf, "--data", data, "--out", out, *COMMON, *extra, **kw)


def test_continued_step_counts_on_with_cumulative_bias_correction(run_meteor, smollm_gguf, faq_sets, job_a,
                                                                 tmp_path):
    out = tmp_path / "b"
    p = train(run_meteor, smollm_gguf, faq_sets["b"], out, "--max-steps", 1, "--init-checkpoint",
              job_a / "checkpoint.safetensors")
    assert "trained 1 steps (to step 4)" in p.stderr
    a, meta_a = ckpt(job_a)
    b, meta_b = ckpt(out)
    assert int(meta_a["step"]) == A_STEPS and int(meta_b["step"]) == A_STEPS + 1
    assert meta_b["data_pos"] == "0:1", "the new data starts at its own first batch"
    assert meta_b["trainable"] == meta_a["trainable"] == \
        "lora rank 4 alpha 8 q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    m = metrics(out)
    assert [r["step"] for r in m] == [A_STEPS + 1] and m[0]["lr"] == pytest.approx(LR)
    names = lora_names(b)
    assert names == lora_names(a) and len(names) == 2 * 7 * 30

    t = A_STEPS + 1
    worst_cum = worst_local = worst_v = 0.0
    scale = 0.0
    for n in names:
        w_a, m_a, v_a = (a[f"{k}.{n}"].astype(np.float64) for k in "wmv")
        w_b, m_b, v_b = (b[f"{k}.{n}"].astype(np.float64) for k in "wmv")
        # torch.optim.AdamW with weight decay 0 (meteor train's default), from the moments
        # as saved after the step: w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
        def update(step):
            return LR / (1 - BETA1 ** step) * m_b / (np.sqrt(v_b) / np.sqrt(1 - BETA2 ** step) + EPS)
        worst_cum = max(worst_cum, np.abs(w_a - update(t) - w_b).max())
        worst_local = max(worst_local, np.abs(w_a - update(1) - w_b).max())
        scale = max(scale, np.abs(w_b - w_a).max())
        # The moments went on from A's: the gradient that m_b implies also gives v_b.
        g = (m_b - BETA1 * m_a) / (1 - BETA1)
        v_want = BETA2 * v_a + (1 - BETA2) * g * g
        worst_v = max(worst_v, (np.abs(v_want - v_b) / (np.abs(v_b) + 1e-20)).max())
    print(f"largest update {scale:.3g}; |w - ref| at the cumulative step {worst_cum:.3g}, "
          f"at step 1 {worst_local:.3g}; v relative error {worst_v:.3g}")
    assert scale > 1e-4
    assert worst_cum < 1e-7
    assert worst_local > 100 * 1e-7, "bias correction at the job's own step 1 would be told apart"
    assert worst_v < 1e-3


def test_schedule_covers_the_continued_jobs_own_steps(run_meteor, smollm_gguf, faq_sets, job_a, tmp_path):
    """Warmup and decay start again for the new job (it gets its own learning-rate curve),
    while the step numbers go on."""
    sched = ["--max-steps", 3, "--schedule", "linear", "--warmup", 1]
    train(run_meteor, smollm_gguf, faq_sets["b"], tmp_path / "cont", *sched, "--init-checkpoint",
          job_a / "checkpoint.safetensors")
    train(run_meteor, smollm_gguf, faq_sets["b"], tmp_path / "fresh", *sched)
    cont, fresh = metrics(tmp_path / "cont"), metrics(tmp_path / "fresh")
    assert [r["step"] for r in cont] == [A_STEPS + 1, A_STEPS + 2, A_STEPS + 3]
    # transformers' linear schedule with 1 warmup step over 3: factors 0, 1, 1/2.
    assert [r["lr"] for r in cont] == [r["lr"] for r in fresh] == pytest.approx([0.0, LR, LR / 2])


def test_continuing_equals_one_uninterrupted_run(run_meteor, smollm_gguf, faq_sets, tmp_path):
    """One example, so every step trains the same batch: 2 steps then 2 continued steps are
    the very computation of 4 steps in one run (constant schedule, dropout masks keyed by the
    cumulative step), so weights and moments agree bit for bit."""
    one = faq_sets["one"]
    extra = ["--lora-dropout", "0.1"]
    train(run_meteor, smollm_gguf, one, tmp_path / "u", "--max-steps", 4, *extra)
    train(run_meteor, smollm_gguf, one, tmp_path / "a2", "--max-steps", 2, *extra)
    train(run_meteor, smollm_gguf, one, tmp_path / "b2", "--max-steps", 2, *extra, "--init-checkpoint",
          tmp_path / "a2" / "checkpoint.safetensors")
    u, meta_u = ckpt(tmp_path / "u")
    b, meta_b = ckpt(tmp_path / "b2")
    assert meta_u["step"] == meta_b["step"] == "4"
    assert meta_u["run_key"] != meta_b["run_key"]
    assert sorted(u) == sorted(b)
    differing = [k for k in u if not np.array_equal(u[k], b[k])]
    assert not differing, f"{len(differing)} tensors differ, e.g. {differing[:3]}"
    strip = lambda rows: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]
    assert strip(metrics(tmp_path / "b2")) == strip(metrics(tmp_path / "u"))[2:]


def test_killed_continued_job_resumes_identically(run_meteor, smollm_gguf, faq_sets, job_a, tmp_path):
    init = ["--init-checkpoint", job_a / "checkpoint.safetensors"]
    args = ["--max-steps", 3, "--save-every", 1, "--lora-dropout", "0.05"]
    full = tmp_path / "full"
    train(run_meteor, smollm_gguf, faq_sets["b"], full, *args, *init)
    killed = tmp_path / "killed"
    env = dict(os.environ, METEOR_FAULT_KILL="checkpoint_saved:1")
    p = train(run_meteor, smollm_gguf, faq_sets["b"], killed, *args, *init, check=False, env=env)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert ckpt(killed)[1]["step"] == str(A_STEPS + 1)
    assert not (killed / "adapter").exists()
    # Another starting point (none, or A's adapter instead of its checkpoint) is refused.
    for other in ([], ["--init-adapter", job_a / "adapter"]):
        p = train(run_meteor, smollm_gguf, faq_sets["b"], killed, *args, *other, "--resume", check=False)
        errors = [l for l in p.stderr.splitlines() if l.startswith("meteor: error:")]
        assert p.returncode != 0 and len(errors) == 1 and "different settings" in errors[0], p.stderr
    train(run_meteor, smollm_gguf, faq_sets["b"], killed, *args, *init, "--resume")
    for f in ("checkpoint.safetensors", "adapter/adapter_model.safetensors", "adapter/adapter_config.json"):
        assert (full / f).read_bytes() == (killed / f).read_bytes(), f
    strip = lambda rows: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]
    assert strip(metrics(full)) == strip(metrics(killed))
    assert [r["step"] for r in metrics(full)] == [A_STEPS + 1, A_STEPS + 2, A_STEPS + 3]


def test_init_adapter_starts_from_its_weights_with_fresh_moments(run_meteor, smollm_gguf, faq_sets, job_a,
                                                                 tmp_path):
    """The first loss (computed before the first update) of a job started from A's adapter is
    the loss of the model with that adapter: the same as a job continuing A's checkpoint, and
    not that of a fresh LoRA. Its moments start at zero and its step at 0."""
    b = faq_sets["b"]
    train(run_meteor, smollm_gguf, b, tmp_path / "from_adapter", "--max-steps", 1, "--init-adapter",
          job_a / "adapter")
    train(run_meteor, smollm_gguf, b, tmp_path / "from_ckpt", "--max-steps", 1, "--init-checkpoint",
          job_a / "checkpoint.safetensors")
    train(run_meteor, smollm_gguf, b, tmp_path / "fresh", "--max-steps", 1)
    loss = {n: metrics(tmp_path / n)[0]["loss"] for n in ("from_adapter", "from_ckpt", "fresh")}
    print(loss)
    assert loss["from_adapter"] == pytest.approx(loss["from_ckpt"], abs=2e-6)
    assert abs(loss["fresh"] - loss["from_adapter"]) > 0.05
    c, meta = ckpt(tmp_path / "from_adapter")
    assert meta["step"] == "1"
    # After one step from zero moments m = (1-b1) g and v = (1-b2) g^2, so m^2/v = (1-b1)^2/(1-b2).
    ratios = []
    for n in lora_names(c):
        m, v = c[f"m.{n}"].astype(np.float64), c[f"v.{n}"].astype(np.float64)
        keep = v > 1e-24
        ratios.append(m[keep] ** 2 / v[keep])
    ratios = np.concatenate(ratios)
    assert ratios.size > 1000
    np.testing.assert_allclose(ratios, (1 - BETA1) ** 2 / (1 - BETA2), rtol=1e-3)


def test_changed_init_adapter_is_refused_on_resume(run_meteor, smollm_gguf, faq_sets, job_a, tmp_path):
    adapter = tmp_path / "adapter"
    shutil.copytree(job_a / "adapter", adapter)
    out = tmp_path / "c"
    train(run_meteor, smollm_gguf, faq_sets["b"], out, "--max-steps", 1, "--init-adapter", adapter)
    train(run_meteor, smollm_gguf, faq_sets["b"], out, "--max-steps", 1, "--init-adapter", adapter, "--resume")
    raw = bytearray((adapter / "adapter_model.safetensors").read_bytes())
    raw[-1] ^= 1  # one bit of the last weight
    (adapter / "adapter_model.safetensors").write_bytes(bytes(raw))
    p = train(run_meteor, smollm_gguf, faq_sets["b"], out, "--max-steps", 1, "--init-adapter", adapter,
              "--resume", check=False)
    assert p.returncode != 0 and "different settings" in p.stderr, p.stderr


def one_error(p, *needles):
    errors = [l for l in p.stderr.splitlines() if l.startswith("meteor: error:")]
    assert p.returncode not in (0, None) and p.returncode > 0, p.stderr
    assert len(errors) == 1, p.stderr
    for n in needles:
        assert str(n) in errors[0], errors[0]
    return errors[0]


def test_bad_starting_points(run_meteor, smollm_gguf, faq_sets, job_a, tmp_path):
    b, a_ckpt, a_adapter = faq_sets["b"], job_a / "checkpoint.safetensors", job_a / "adapter"
    run = lambda *extra: train(run_meteor, smollm_gguf, b, tmp_path / "x", "--max-steps", 1, *extra, check=False)
    # Another LoRA rank: the checkpoint records what it trained.
    one_error(run("--init-checkpoint", a_ckpt, "--lora-rank", 8), a_ckpt, "lora rank 4", "lora rank 8")
    one_error(run("--init-checkpoint", a_ckpt, "--lora-targets", "q,v"), a_ckpt, "q_proj,v_proj")
    # A checkpoint without that record (as older ones are) is still checked tensor by tensor.
    tensors, meta = ckpt(job_a)
    del meta["trainable"]
    bare = tmp_path / "bare.safetensors"
    save_file(tensors, str(bare), metadata=meta)
    one_error(run("--init-checkpoint", bare, "--lora-rank", 8), bare, "values, expected", "LoRA rank")
    one_error(run("--init-checkpoint", bare, "--lora-targets", "q,v"), bare, "tensors", "LoRA rank")
    # Missing or wrong files.
    one_error(run("--init-checkpoint", tmp_path / "none.safetensors"), tmp_path / "none.safetensors")
    one_error(run("--init-adapter", tmp_path / "none"), tmp_path / "none")
    one_error(run("--init-checkpoint", a_adapter / "adapter_model.safetensors"), "not a meteor training checkpoint")
    one_error(run("--init-adapter", a_adapter, "--lora-alpha", 16), a_adapter, "alpha 8", "alpha 16")
    # Flags that exclude each other or do not apply.
    one_error(run("--init-checkpoint", a_ckpt, "--init-adapter", a_adapter), "exclude each other")
    one_error(run("--init-adapter", a_adapter, "--full"), "--full")
    # The job's own output checkpoint would be overwritten by its first save.
    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(a_ckpt, own / "checkpoint.safetensors")
    p = train(run_meteor, smollm_gguf, b, own, "--max-steps", 1, "--init-checkpoint", own / "checkpoint.safetensors",
              check=False)
    one_error(p, "is the checkpoint this job writes")
    assert (own / "checkpoint.safetensors").read_bytes() == a_ckpt.read_bytes()
