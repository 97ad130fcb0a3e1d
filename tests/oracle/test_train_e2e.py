"""End-to-end training on the real SmolLM2-135M-Instruct through `meteor train`.

LoRA SFT on 32 (question, answer) pairs from the bundled Python FAQ: the loss falls by a
stated margin and the model then reproduces a trained answer's opening words greedily;
a run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run; a
diverging run stops with a clear error and keeps its last good checkpoint.
"""
import json
import os
import signal

import pytest

N_PAIRS = 32


def first_sentence(text):
    words = text.replace("\n", " ").split()
    out = []
    for w in words:
        out.append(w)
        if w.endswith(".") and len(out) >= 6:
            break
        if len(out) >= 30:
            break
    return " ".join(out)


@pytest.fixture(scope="module")
def sft_data(repo_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "faq32.jsonl"
    rows = [json.loads(l) for l in (repo_root / "data" / "python_faq.jsonl").read_text().splitlines()]
    with path.open("w") as f:
        for r in rows[:N_PAIRS]:
            f.write(json.dumps({"question": r["title"], "answer": first_sentence(r["reference_answer"])}) + "\n")
    return path


def metrics(out_dir):
    return [json.loads(l) for l in (out_dir / "metrics.jsonl").read_text().splitlines()]


TRAIN_ARGS = ["--batch-size", 4, "--lora-rank", 16, "--lora-alpha", 32, "--lora-dropout", "0.05", "--lr", "2e-3",
              "--schedule", "constant", "--threads", 2, "--quiet"]


@pytest.fixture(scope="module")
def trained(run_meteor, smollm_gguf, sft_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run_meteor("train", "-m", smollm_gguf, "--data", sft_data, "--out", out, "--epochs", 4,
               *TRAIN_ARGS, timeout=1200)
    return out


def test_lora_sft_lowers_loss(trained):
    m = metrics(trained)
    steps_per_epoch = N_PAIRS // 4
    assert len(m) == 4 * steps_per_epoch
    first = sum(r["loss"] for r in m[:steps_per_epoch]) / steps_per_epoch
    last = sum(r["loss"] for r in m[-steps_per_epoch:]) / steps_per_epoch
    print(f"mean loss epoch 1 {first:.3f} -> epoch 4 {last:.3f}")
    assert last < 0.5 * first


def test_trained_adapter_reproduces_answers(trained, run_meteor, smollm_gguf, sft_data):
    """Greedy decoding with the exported PEFT adapter starts like the trained answers."""
    assert (trained / "adapter" / "adapter_config.json").exists()
    rows = [json.loads(l) for l in sft_data.read_text().splitlines()][:8]
    hits = 0
    for r in rows:
        out = json.loads(run_meteor("generate", "-m", smollm_gguf, "--adapter", trained / "adapter",
                                    "--chat", "-p", r["question"], "--greedy", "-n", 12, "--json",
                                    timeout=600).stdout)
        want = " ".join(r["answer"].split()[:4])
        got = " ".join(out["text"].split()[:4])
        print(f"{want!r} <- {got!r}")
        hits += got == want
    print(f"{hits}/8 answers reproduced (first four words)")
    assert hits >= 4


def test_resume_after_kill_is_identical(run_meteor, smollm_gguf, sft_data, tmp_path):
    args = ["train", "-m", smollm_gguf, "--data", sft_data, "--max-steps", 6, "--save-every", 2,
            *TRAIN_ARGS]
    full = tmp_path / "full"
    run_meteor(*args, "--out", full, timeout=900)
    killed = tmp_path / "killed"
    # Killed right after its second checkpoint (step 4), at a fault point rather than by a
    # timer, so where it dies does not depend on the machine's speed.
    env = dict(os.environ, METEOR_FAULT_KILL="checkpoint_saved:2")
    proc = run_meteor(*args, "--out", killed, check=False, env=env, timeout=900)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert len(metrics(killed)) == 4
    # A kill during step 6 leaves step 5's metrics line behind the checkpoint: the resumed
    # run must drop it and write step 5 again.
    with (killed / "metrics.jsonl").open("a") as f:
        f.write((full / "metrics.jsonl").read_text().splitlines()[4] + "\n")
    run_meteor(*args, "--out", killed, "--resume", timeout=900)
    assert (full / "checkpoint.safetensors").read_bytes() == (killed / "checkpoint.safetensors").read_bytes()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]
    assert strip(metrics(full)) == strip(metrics(killed))


def test_resume_with_other_settings_is_refused(run_meteor, smollm_gguf, sft_data, tmp_path):
    out = tmp_path / "r"
    run_meteor("train", "-m", smollm_gguf, "--data", sft_data, "--max-steps", 1, "--out", out,
               *TRAIN_ARGS, timeout=600)
    p = run_meteor("train", "-m", smollm_gguf, "--data", sft_data, "--max-steps", 1, "--out", out,
                   *TRAIN_ARGS, "--lr", "1e-3", "--resume", check=False)
    assert p.returncode != 0 and "different settings" in p.stderr


def test_divergence_stops_and_keeps_checkpoint(run_meteor, smollm_gguf, sft_data, tmp_path):
    out = tmp_path / "nan"
    p = run_meteor("train", "-m", smollm_gguf, "--data", sft_data, "--out", out, "--max-steps", 8,
                   "--save-every", 1, "--max-grad-norm", 0, *TRAIN_ARGS, "--lr", "1e30", check=False,
                   timeout=900)
    assert p.returncode != 0
    assert "became" in p.stderr and "last good checkpoint" in p.stderr
    ckpt = out / "checkpoint.safetensors"
    assert ckpt.exists()
    losses = [r["loss"] for r in metrics(out)]
    assert all(map(lambda x: x == x and abs(x) != float("inf"), losses))


def test_bad_training_data(run_meteor, smollm_gguf, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q1", "answer": "a1"}\n{"question": "q2"}\n')
    p = run_meteor("train", "-m", smollm_gguf, "--data", bad, "--out", tmp_path / "o", check=False)
    assert p.returncode != 0
    lines = [l for l in p.stderr.splitlines() if l.startswith("meteor: error:")]
    assert len(lines) == 1 and "bad.jsonl:2" in lines[0] and "answer" in lines[0]


@pytest.fixture(scope="module")
def pref_data(repo_root, tmp_path_factory):
    """Chosen: the FAQ's own first sentence; rejected: the answer to another question."""
    path = tmp_path_factory.mktemp("pref") / "pairs.jsonl"
    rows = [json.loads(l) for l in (repo_root / "data" / "python_faq.jsonl").read_text().splitlines()][:8]
    with path.open("w") as f:
        for i, r in enumerate(rows):
            other = rows[(i + 3) % len(rows)]
            f.write(json.dumps({"question": r["title"], "chosen": first_sentence(r["reference_answer"]),
                                "rejected": first_sentence(other["reference_answer"])}) + "\n")
    return path


@pytest.mark.parametrize("loss", ["margin", "dpo"])
def test_preference_training(run_meteor, smollm_gguf, pref_data, tmp_path, loss):
    out = tmp_path / loss
    run_meteor("train", "-m", smollm_gguf, "--data", pref_data, "--out", out, "--loss", loss,
               "--epochs", 3, "--batch-size", 2, "--lora-rank", 8, "--lr", "1e-3", "--schedule",
               "constant", "--sft-weight", "0.1", "--threads", 2, "--quiet", timeout=1200)
    m = metrics(out)
    assert len(m) == 12
    for r in m:
        assert {"logps_chosen", "logps_rejected", "reward_margin", "accuracy"} <= r.keys()
    first = sum(r["loss"] for r in m[:4]) / 4
    last = sum(r["loss"] for r in m[-4:]) / 4
    margin_first = sum(r["reward_margin"] for r in m[:4]) / 4
    margin_last = sum(r["reward_margin"] for r in m[-4:]) / 4
    print(f"{loss}: loss {first:.3f} -> {last:.3f}, reward margin {margin_first:.3f} -> {margin_last:.3f}")
    assert last < first
    assert margin_last > margin_first
    assert (out / "ref_logps.json").exists() == (loss == "dpo")


def test_sft_data_with_preference_loss_is_refused(run_meteor, smollm_gguf, sft_data, tmp_path):
    p = run_meteor("train", "-m", smollm_gguf, "--data", sft_data, "--out", tmp_path / "x", "--loss",
                   "dpo", check=False)
    assert p.returncode != 0 and "question/chosen/rejected" in p.stderr
