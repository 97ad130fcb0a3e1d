"""Temporaries of atomic writes after a kill: a process killed between writing a file's
temporary (NAME.tmp.XXXXXX) and renaming it over NAME (crash point "atomic_written") leaves
the complete temporary, a checkpoint's size. The next run of the same output removes it when
it starts, before it writes anything (even a run that then stops, refused), and a rerun of an
interrupted export removes its own; the results equal those of runs never interrupted.
"""
import json
import os
import signal

import pytest

ARGS = ["--batch-size", 4, "--max-steps", 4, "--save-every", 1, "--lora-rank", 8, "--lr", "1e-3",
        "--schedule", "constant", "--threads", 2, "--quiet"]


def temporaries(folder):
    return sorted(p for p in folder.rglob("*") if ".tmp." in p.name)


def kill_at(point):
    return dict(os.environ, METEOR_FAULT_KILL=point)


@pytest.fixture(scope="module")
def sft_data(repo_root, tmp_path_factory):
    rows = [json.loads(l) for l in (repo_root / "data" / "python_faq.jsonl").read_text().splitlines()]
    path = tmp_path_factory.mktemp("data") / "faq16.jsonl"
    path.write_text("".join(json.dumps({"question": r["title"], "answer": " ".join(r["reference_answer"].split()[:24])})
                            + "\n" for r in rows[:16]))
    return path


def test_train_killed_inside_a_checkpoint_write(run_meteor, smollm_gguf, sft_data, tmp_path):
    train = ["train", "-m", smollm_gguf, "--data", sft_data, *ARGS]
    full = tmp_path / "full"
    run_meteor(*train, "--out", full, timeout=900)
    assert temporaries(full) == []

    out = tmp_path / "killed"
    # Atomic writes of a fresh run: metrics.jsonl, then the checkpoints of steps 1, 2, ...
    p = run_meteor(*train, "--out", out, check=False, env=kill_at("atomic_written:3"), timeout=900)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    left = temporaries(out)
    assert [t.name[:-6] for t in left] == ["checkpoint.safetensors.tmp."]
    assert left[0].stat().st_size == (full / "checkpoint.safetensors").stat().st_size

    # A resume refused for its settings has still opened the folder: the leftover is gone.
    p = run_meteor(*train, "--out", out, "--resume", "--lr", "2e-3", check=False)
    assert p.returncode != 0 and "different settings" in p.stderr
    assert temporaries(out) == []

    run_meteor(*train, "--out", out, "--resume", timeout=900)
    assert temporaries(out) == []
    assert (out / "checkpoint.safetensors").read_bytes() == (full / "checkpoint.safetensors").read_bytes()
    strip = lambda f: [{k: v for k, v in json.loads(l).items() if k != "tokens_per_s"}
                       for l in f.read_text().splitlines()]
    assert strip(out / "metrics.jsonl") == strip(full / "metrics.jsonl")

    # An export killed inside its first file, then run again.
    export = ["export", "-m", smollm_gguf, "--adapter", full / "adapter"]
    run_meteor(*export, "--out", tmp_path / "peft")
    again = tmp_path / "peft-killed"
    p = run_meteor(*export, "--out", again, check=False, env=kill_at("atomic_written:1"))
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert [t.name[:-6] for t in temporaries(again)] == ["adapter_model.safetensors.tmp."]
    run_meteor(*export, "--out", again)
    assert temporaries(again) == []
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert (again / name).read_bytes() == (tmp_path / "peft" / name).read_bytes()


def test_distill_removes_leftovers_when_it_opens_the_run(run_meteor, smollm_gguf, tmp_path):
    """What killed runs leave in a run directory (here planted, named as mkstemp names them)
    goes when the next run opens it, although this one fails on its question file before it
    writes any of those files; a file off the pattern stays."""
    run = tmp_path / "run"
    planted = [run / "data" / "distilled.jsonl.tmp.Ab12Cd",
               run / "train" / "phase1" / "checkpoint.safetensors.tmp.x9Y8z7",
               run / "adapters" / "phase1" / "adapter_model.safetensors.tmp.QQ11qq"]
    other = run / "data" / "notes.tmp.txt"
    for p in planted + [other]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 1000)
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"title": "ok", "question_content": "fine"}\n{not json\n')
    p = run_meteor("distill", "--run", run, "-m", smollm_gguf, "--questions", bad, "--expert-url",
                   "http://127.0.0.1:9/v1", "--expert-model", "m", "--quiet", check=False)
    assert p.returncode == 1 and "q.jsonl:2:" in p.stderr
    assert temporaries(run) == [other]
