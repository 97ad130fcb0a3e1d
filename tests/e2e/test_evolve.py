"""METEOR phase 3 end to end: `meteor evolve` on SmolLM2, no expert involved.

The scenario: 6 questions of the bundled FAQ (5 in the training split), a fresh adapter on the
bare model, two rounds of greedy vs beam-4 answers of 24 tokens, margin loss with a learning
rate high enough that two epochs over a handful of pairs move the log-probs measurably.

Run once uninterrupted (the reference), it is checked for the phase's bookkeeping (each pair's
fate follows from its two texts, the pairs files are the kept pairs, the metrics count them), for
its evidence (after each round the chosen answers are more likely and the chosen-rejected margin
is wider), and against `meteor generate`, which must give the same greedy and beam answers. The
same scenario killed at named points (mid-generation, mid-beam, mid-scoring, mid-training,
between rounds) must end with the reference's bytes. Best-of-n with the self-check and DPO, and
bad input, are checked on their own small runs.
"""

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest

N_QUESTIONS = 6  # 5 train + 1 test with the default --test-fraction and seed 42
FAST = ["--max-tokens", "24", "--max-len", "160", "--batch-size", "2", "--epochs", "2",
        "--lr", "1e-3", "--save-every", "1", "-t", "2", "--seed", "42", "--quiet"]
SCENARIO = ["--from-base", "--rounds", "2"]
ROUND_DIRS = ["adapters/phase3/round-1", "adapters/phase3/round-2", "adapters/phase3"]
ADAPTER_FILES = ["adapter_model.safetensors", "adapter_config.json"]


def jsonl(path):
    return [json.loads(l) for l in Path(path).read_text(encoding="utf-8").splitlines() if l.strip()]


def db(run):
    return sqlite3.connect(f"file:{Path(run) / 'run.db'}?mode=ro", uri=True)


def items(run, stage):
    """{key: output} of a phase-3 stage's done items."""
    with db(run) as c:
        rows = c.execute("select qid, output from items where phase='phase3' and stage=? and "
                         "state=1", (stage,)).fetchall()
    return dict(rows)


def train_questions(run):
    with db(run) as c:
        return c.execute("select id, title, content from questions where split='train' "
                         "order by seq").fetchall()


def metrics(run_meteor, run):
    summary = json.loads(run_meteor("status", run, "--json").stdout)
    return {m["name"]: m["value"] for m in summary["metrics"] if m["phase"] == "phase3"}


def evolve(run_meteor, run, *args, check=True, env=None):
    return run_meteor("evolve", "--run", run, *FAST, *args, check=check, env=env)


def error_line(p):
    lines = [l for l in p.stderr.splitlines() if l.startswith("meteor: error:")]
    assert len(lines) == 1, p.stderr
    return lines[0]


def snapshot(run):
    """The bytes of the phase's exports and adapters, by path in the run."""
    files = {str(p.relative_to(run)): p.read_bytes() for p in (run / "data").glob("*.jsonl")}
    for d in ROUND_DIRS:
        for f in ADAPTER_FILES:
            files[f"{d}/{f}"] = (run / d / f).read_bytes()
    return files


def user_turn(title, content):
    """The question as training renders it (train/data.h): title and content joined."""
    title, content = title or "", content or ""
    if title.strip() and content.strip() and not content.startswith(title):
        return f"{title}\n\n{content}"
    return content if content.strip() else title


@pytest.fixture(scope="module")
def questions(repo_root, tmp_path_factory):
    lines = (repo_root / "data" / "python_faq.jsonl").read_text(encoding="utf-8").splitlines()
    path = tmp_path_factory.mktemp("questions") / "faq6.jsonl"
    path.write_text("".join(l + "\n" for l in lines[:N_QUESTIONS]), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(run_meteor, smollm_gguf, questions, tmp_path_factory):
    """The scenario run once, uninterrupted: (run, snapshot of its outputs)."""
    run = tmp_path_factory.mktemp("reference") / "run"
    evolve(run_meteor, run, "-m", smollm_gguf, "--questions", questions, *SCENARIO)
    return run, snapshot(run)


def test_pairs_follow_from_their_answers(run_meteor, reference):
    run, _ = reference
    qs = train_questions(run)
    lines = jsonl(run / "data" / "evolution.jsonl")
    assert [(l["round"], l["id"]) for l in lines] == [(r, q[0]) for r in (1, 2) for q in qs]
    m = metrics(run_meteor, run)
    for r in (1, 2):
        rows = [l for l in lines if l["round"] == r]
        for l in rows:
            same = l["greedy"] == l["expensive"]
            empty = not l["greedy"] or not l["expensive"]
            want = "empty" if empty else "identical" if same else None
            assert l["drop"] == want, l
            assert l["kept"] == (want is None)
        kept = [l for l in rows if l["kept"]]
        pairs = jsonl(run / "data" / f"pairs-round-{r}.jsonl")
        assert [(p["id"], p["chosen"], p["rejected"]) for p in pairs] == \
            [(l["id"], l["expensive"], l["greedy"]) for l in kept]
        assert [(p["chosen_logp"], p["rejected_logp"]) for p in pairs] == \
            [(l["expensive_logp"], l["greedy_logp"]) for l in kept]
        assert m[f"r{r}.pairs_kept"] == len(kept) > 0
        assert m[f"r{r}.dropped_identical"] == sum(l["drop"] == "identical" for l in rows)
        assert m[f"r{r}.dropped_empty"] == sum(l["drop"] == "empty" for l in rows)
        assert m[f"r{r}.dropped_self_check"] == 0
        assert m[f"r{r}.greedy_equals_expensive_before"] == \
            pytest.approx(sum(l["greedy"] == l["expensive"] for l in rows) / len(rows))
        # round r+1's greedy answers are those of round r's adapter
        after = [l["greedy_after"] for l in rows]
        assert m[f"r{r}.greedy_equals_expensive_after"] == \
            pytest.approx(sum(a == l["expensive"] for a, l in zip(after, rows)) / len(rows))
        if r == 1:
            assert after == [l["greedy"] for l in lines if l["round"] == 2]
    assert m["rounds"] == 2
    assert m["pairs_kept"] == m["r1.pairs_kept"] + m["r2.pairs_kept"]


def test_each_round_makes_the_chosen_answers_likelier(run_meteor, reference):
    run, _ = reference
    m = metrics(run_meteor, run)
    for r in (1, 2):
        print(f"\n[round {r}] chosen {m[f'r{r}.chosen_logp_before']:.4f} -> "
              f"{m[f'r{r}.chosen_logp_after']:.4f}, margin {m[f'r{r}.margin_before']:.4f} -> "
              f"{m[f'r{r}.margin_after']:.4f}")
        assert m[f"r{r}.chosen_logp_after"] > m[f"r{r}.chosen_logp_before"]
        assert m[f"r{r}.margin_after"] > m[f"r{r}.margin_before"]
        assert m[f"r{r}.expensive_logp_after"] > m[f"r{r}.expensive_logp_before"]
        assert m[f"pref_round{r}_last_loss"] < m[f"pref_round{r}_first_loss"]
    # round 2 starts where round 1 ended: its "before" is round 1's "after" adapter
    lines = jsonl(run / "data" / "evolution.jsonl")
    assert all("greedy_logp_after" in l for l in lines)
    for f in ADAPTER_FILES:
        assert (run / "adapters/phase3" / f).read_bytes() == \
            (run / "adapters/phase3/round-2" / f).read_bytes()
    assert (run / "train/phase3/round-2/metrics.jsonl").is_file()


def test_answers_are_those_of_meteor_generate(run_meteor, reference, smollm_gguf):
    """Round 1 runs on the bare model (its fresh adapter is zero): its greedy and beam answers
    must be what `meteor generate` gives for the same chat prompt."""
    run, _ = reference
    lines = {l["id"]: l for l in jsonl(run / "data" / "evolution.jsonl") if l["round"] == 1}
    for qid, title, content in train_questions(run)[:2]:
        prompt = user_turn(title, content)
        common = ["generate", "-m", smollm_gguf, "--chat", "-p", prompt, "-n", "24", "-t", "2"]
        greedy = run_meteor(*common, "--temperature", "0").stdout
        beam = run_meteor(*common, "--beams", "4").stdout
        assert greedy.strip() == lines[qid]["greedy"].strip()
        assert beam.strip() == lines[qid]["expensive"].strip()


def test_kill_at_every_point_resumes_to_the_same_result(run_meteor, reference, smollm_gguf,
                                                        questions, tmp_path):
    _, files = reference
    run = tmp_path / "run"
    kills = [
        "greedy_done:2",         # round 1: two greedy answers stored
        "expensive_done:2",      # mid-beam: two questions searched, the others in flight
        "pair_done:3",           # mid-scoring
        "checkpoint_saved:1",    # inside round 1's training
        "evolve_round_done:1",   # round 1 trained: between rounds
        "rescore_done:2",        # round 1's scores after training, partly
        "greedy_done:3",         # round 2's greedy answers (round 1's adapter)
        "expensive_done:4",      # round 2's beams
        "checkpoint_saved:2",    # inside round 2's training
        "evolve_round_done:1",   # round 2 trained
        "greedy_done:1",         # the evidence pass after the last round
    ]
    args = ["-m", smollm_gguf, "--questions", questions, *SCENARIO]
    for point in kills:
        env = dict(os.environ, METEOR_FAULT_KILL=point)
        p = evolve(run_meteor, run, *args, check=False, env=env)
        assert p.returncode == -signal.SIGKILL, f"{point}: {p.returncode} {p.stderr[-800:]}"
    evolve(run_meteor, run, *args)
    assert snapshot(run) == files


def test_a_finished_run_reruns_to_the_same_bytes(run_meteor, reference, smollm_gguf, questions):
    run, files = reference
    evolve(run_meteor, run, "-m", smollm_gguf, "--questions", questions, *SCENARIO)
    assert snapshot(run) == files


def test_best_of_n_with_self_check_and_dpo(run_meteor, smollm_gguf, questions, tmp_path):
    run = tmp_path / "run"
    evolve(run_meteor, run, "-m", smollm_gguf, "--questions", questions, "--from-base",
           "--rounds", "1", "--strategy", "best-of-n", "--n", "3", "--self-check", "--loss", "dpo")
    qs = train_questions(run)
    samples, expensive = items(run, "sample"), items(run, "expensive")
    checks, pairs = items(run, "check"), items(run, "pair")
    assert len(samples) == 3 * len(qs)
    lines = {l["id"]: l for l in jsonl(run / "data" / "evolution.jsonl")}
    kept = dropped = 0
    for qid, _, _ in qs:
        chosen = json.loads(expensive[qid + "/r1/a0"])
        texts = [samples[f"{qid}/r1/a{k}"] for k in (1, 2, 3)]
        # the stored choice is one of the samples (the likeliest by the model's own scores)
        assert chosen["text"] == texts[chosen["sample"] - 1]
        l = lines[qid]
        if not l["greedy"] or not l["expensive"]:
            assert l["drop"] == "empty"
        elif l["greedy"] == l["expensive"]:
            assert l["drop"] == "identical"
        else:
            first = json.loads(checks[qid + "/r1/a1"])["better"]   # expensive shown as A
            second = json.loads(checks[qid + "/r1/a2"])["better"]  # expensive shown as B
            both = first == "A" and second == "B"
            assert l["drop"] == (None if both else "self_check"), (first, second)
            kept += both
            dropped += not both
        assert json.loads(pairs[qid + "/r1/a0"])["drop"] == l["drop"]
    m = metrics(run_meteor, run)
    assert m["r1.pairs_kept"] == kept
    assert m["r1.dropped_self_check"] == dropped
    print(f"\n[best-of-3, self-check] kept {kept}, dropped by the self-check {dropped}")
    if kept:
        assert (run / "train/phase3/round-1/ref_logps.json").is_file()
        assert m["r1.margin_after"] > m["r1.margin_before"]


@pytest.mark.parametrize("args, message", [
    ([], "--from-base"),
    (["--from-base", "--beams", "1"], "identical"),
    (["--from-base", "--strategy", "best-of-n", "--n", "1"], "--n must be"),
    (["--from-base", "--loss", "sft"], "--loss must be margin or dpo"),
    (["--from-base", "--strategy", "sample"], "--strategy must be"),
    (["--from-base", "--adapter", "x"], "either --adapter DIR or --from-base"),
])
def test_bad_input_is_refused(run_meteor, smollm_gguf, questions, tmp_path, args, message):
    run = tmp_path / "run"
    p = run_meteor("evolve", "--run", run, "-m", smollm_gguf, "--questions", questions, *args,
                   "--quiet", check=False)
    assert p.returncode != 0
    assert message in error_line(p)
    assert not (run / "adapters" / "phase3").exists()
