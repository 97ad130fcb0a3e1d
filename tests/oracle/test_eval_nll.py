"""`meteor eval`'s judge-free metric against PyTorch: the reference NLL stored for each test
question equals transformers' teacher-forced mean NLL of the reference answer on the same
(dequantised) SmolLM2 weights.

A cheap run (`meteor evolve`, one round on a tiny learning rate) gives a test split; `meteor eval
--models base --precise` scores each reference answer with f32 activations and KV cache. The
tokens and the answer mask come from tools/data_dump on an SFT file of (user turn, reference),
the layout eval scores (train/data.h: chat template, answer up to and including the end-of-turn
marker). The mean is over the answer tokens; stated tolerance: 1e-4 absolute, as the phase 3 pair
oracle (tests/oracle/test_evolve_pairs.py) uses for the same forward pass.
"""
import json
import sqlite3
import subprocess

import pytest
import torch

N_QUESTIONS = 8
MAX_LEN = 4096


def jsonl(path):
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def user_turn(title, content):
    """The question as training renders it (train/data.h mt_data_user_turn)."""
    title, content = title or "", content or ""
    if title.strip() and content.strip() and not content.startswith(title):
        return f"{title}\n\n{content}"
    return content if content.strip() else title


@pytest.fixture(scope="module")
def evaluated(run_meteor, smollm_gguf, repo_root, tmp_path_factory):
    """(run, [(question id, user turn, reference)] of the test split)."""
    lines = (repo_root / "data" / "python_faq.jsonl").read_text(encoding="utf-8").splitlines()
    tmp = tmp_path_factory.mktemp("eval")
    questions = tmp / "faq.jsonl"
    questions.write_text("".join(l + "\n" for l in lines[:N_QUESTIONS]), encoding="utf-8")
    run = tmp / "run"
    run_meteor("evolve", "--run", run, "-m", smollm_gguf, "--questions", questions, "--from-base",
               "--rounds", "1", "--max-tokens", "8", "--max-len", "128", "--batch-size", "8",
               "--lr", "1e-9", "--test-fraction", "0.5", "-t", "2", "--quiet")
    run_meteor("eval", "--run", run, "--models", "base", "--precise", "--max-tokens", "4",
               "--bootstrap", "10", "-t", "2", "--quiet")
    with sqlite3.connect(f"file:{run / 'run.db'}?mode=ro", uri=True) as c:
        rows = c.execute("select id, title, content, reference from questions "
                         "where split='test' order by seq").fetchall()
    qs = [(i, user_turn(t, c), r) for i, t, c, r in rows if r]
    assert len(qs) >= 2
    return run, qs


@pytest.fixture(scope="module")
def dumped(evaluated, smollm_gguf, build_dir, tmp_path_factory):
    _, qs = evaluated
    data = tmp_path_factory.mktemp("sft") / "references.jsonl"
    data.write_text("".join(json.dumps({"question": u, "answer": r}) + "\n" for _, u, r in qs),
                    encoding="utf-8")
    exe = build_dir / "tools" / "data_dump"
    assert exe.is_file(), f"{exe} is missing: build it with `make`"
    out = subprocess.run([str(exe), str(smollm_gguf), str(data), "--max-len", str(MAX_LEN)],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    examples = json.loads(out)["examples"]
    assert len(examples) == len(qs) and not any(e["truncated"] for e in examples)
    return examples


def test_stored_reference_nll_equals_transformers(evaluated, dumped, smollm_gguf, hf_gguf):
    run, qs = evaluated
    model, _ = hf_gguf(smollm_gguf)
    stored = {l["id"]: l["reference_nll"] for l in jsonl(run / "data" / "eval-answers.jsonl")}
    worst = 0.0
    for (qid, _, _), ex in zip(qs, dumped):
        ids = torch.tensor([ex["tokens"]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits.double()
        # position i predicts token i + 1; the mask marks the predicted (answer) tokens
        lp = torch.log_softmax(logits[0, :-1], dim=-1).gather(-1, ids[0, 1:, None])[:, 0]
        target = torch.tensor(ex["mask"][1:], dtype=torch.bool)
        want = -(lp[target].sum() / target.sum()).item()
        worst = max(worst, abs(stored[qid] - want))
        assert stored[qid] == pytest.approx(want, abs=1e-4), qid
    print(f"\nlargest difference of a stored reference NLL from transformers: {worst:.2e}")
