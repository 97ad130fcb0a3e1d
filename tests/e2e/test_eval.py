"""`meteor eval` end to end on SmolLM2: every model answers the run's held-out test questions,
and the judge-free metric (mean token NLL of each reference answer) comes with a seeded
bootstrap 95 % interval and each model's difference from the base.

The run is made cheaply by `meteor evolve` (8 questions of the bundled FAQ, half held out, one
round from a fresh adapter), so it has a test split and adapters/phase3. The evaluation is
checked for what it stores and exports, for a rerun that computes nothing and changes no byte,
for summary numbers equal to a Python recomputation from data/eval-answers.jsonl (the means, and
the bootstrap replayed with the documented generator of src/pipeline/bootstrap.h: splitmix64
seeding, xoshiro256**, index = next() % n, numpy's linear percentiles), and for bad input.
"""

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

N_QUESTIONS = 8
RESAMPLES, SEED = 500, 7
EVAL = ["--max-tokens", "16", "--slots", "4", "--bootstrap", str(RESAMPLES), "--seed", str(SEED),
        "-t", "2", "--quiet"]
MASK = (1 << 64) - 1


def jsonl(path):
    return [json.loads(l) for l in Path(path).read_text(encoding="utf-8").splitlines() if l.strip()]


def db(run):
    return sqlite3.connect(f"file:{Path(run) / 'run.db'}?mode=ro", uri=True)


def eval_items(run):
    """{(stage, key): (state, output, updated)} of the eval phase."""
    with db(run) as c:
        rows = c.execute("select stage, qid, state, output, updated from items "
                         "where phase='eval'").fetchall()
    return {(s, k): (st, o, u) for s, k, st, o, u in rows}


def held_out_questions(run):
    with db(run) as c:
        return c.execute("select id, reference from questions where split='test' "
                         "order by seq").fetchall()


def error_line(p):
    lines = [l for l in p.stderr.splitlines() if l.startswith("meteor: error:")]
    assert len(lines) == 1, p.stderr
    return lines[0]


class Rng:
    """core/rng.h: splitmix64 seeding, xoshiro256**."""

    def __init__(self, seed):
        self.s = []
        x = seed
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            self.s.append(z ^ (z >> 31))

    def next(self):
        s = self.s

        def rotl(x, k):
            return ((x << k) | (x >> (64 - k))) & MASK

        result = (rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result


def bootstrap_ci(values, resamples, seed):
    rng = Rng(seed)
    n = len(values)
    means = []
    for _ in range(resamples):
        total = 0.0
        for _ in range(n):
            total += values[rng.next() % n]
        means.append(total / n)
    lo, hi = np.percentile(np.array(means), [2.5, 97.5])
    return lo, hi


@pytest.fixture(scope="module")
def run(run_meteor, smollm_gguf, repo_root, tmp_path_factory):
    lines = (repo_root / "data" / "python_faq.jsonl").read_text(encoding="utf-8").splitlines()
    tmp = tmp_path_factory.mktemp("eval")
    questions = tmp / "faq8.jsonl"
    questions.write_text("".join(l + "\n" for l in lines[:N_QUESTIONS]), encoding="utf-8")
    run = tmp / "run"
    run_meteor("evolve", "--run", run, "-m", smollm_gguf, "--questions", questions, "--from-base",
               "--rounds", "1", "--max-tokens", "16", "--max-len", "128", "--batch-size", "4",
               "--lr", "1e-3", "--test-fraction", "0.5", "-t", "2", "--seed", "42", "--quiet")
    assert (run / "adapters" / "phase3" / "adapter_config.json").is_file()
    assert len(held_out_questions(run)) >= 2, "too few test questions for a bootstrap"
    run_meteor("eval", "--run", run, *EVAL)
    return run


def test_every_model_answers_every_test_question(run):
    qs = held_out_questions(run)
    items = eval_items(run)
    lines = jsonl(run / "data" / "eval-answers.jsonl")
    # the default models: the base and the run's one phase adapter
    assert [(l["model"], l["id"]) for l in lines] == \
        [(m, q) for m in ("base", "phase3") for q, _ in qs]
    for l in lines:
        state, answer, _ = items[("answer", f"{l['id']}/{l['model']}")]
        assert state == 1 and l["answer"] == answer
        state, nll, _ = items[("nll", f"{l['id']}/{l['model']}")]
        assert state == 1 and l["reference_nll"] == json.loads(nll)["reference_nll"] > 0
    assert all(l["reference_nll"] is not None for l in lines), "every FAQ question has a reference"
    assert any(l["answer"] for l in lines)


def test_a_rerun_computes_nothing_and_changes_nothing(run_meteor, run):
    before_items = eval_items(run)
    with db(run) as c:
        metrics_before = c.execute("select count(*) from metrics").fetchone()[0]
    exports = [run / "data" / "eval-answers.jsonl", run / "eval" / "summary.json"]
    before = [p.read_bytes() for p in exports]
    run_meteor("eval", "--run", run, *EVAL)
    assert eval_items(run) == before_items  # same outputs, same update times
    with db(run) as c:
        assert c.execute("select count(*) from metrics").fetchone()[0] == metrics_before
    assert [p.read_bytes() for p in exports] == before


def test_summary_equals_a_recomputation_from_the_answers(run_meteor, run):
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["version"] == 1
    assert summary["bootstrap"] == {"resamples": RESAMPLES, "seed": SEED}
    lines = jsonl(run / "data" / "eval-answers.jsonl")
    nll = {m: [l["reference_nll"] for l in lines if l["model"] == m] for m in ("base", "phase3")}
    assert [m["name"] for m in summary["models"]] == ["base", "phase3"]
    status = json.loads(run_meteor("status", run, "--json").stdout)
    stored = {m["name"]: m["value"] for m in status["metrics"] if m["phase"] == "eval"}
    for m in summary["models"]:
        v = nll[m["name"]]
        assert m["n"] == len(v)
        assert m["adapter"] == (None if m["name"] == "base" else "adapters/phase3")
        got = m["reference_nll"]
        assert got["mean"] == pytest.approx(sum(v) / len(v), rel=1e-12)
        lo, hi = bootstrap_ci(v, RESAMPLES, SEED)
        assert (got["ci_low"], got["ci_high"]) == (pytest.approx(lo, rel=1e-12),
                                                   pytest.approx(hi, rel=1e-12))
        assert got["ci_low"] < got["mean"] < got["ci_high"]
        assert stored[f"{m['name']}.reference_nll"] == pytest.approx(got["mean"], rel=1e-12)
        assert stored[f"{m['name']}.reference_nll_ci_low"] == pytest.approx(lo, rel=1e-12)
        if m["name"] == "base":
            assert m["vs_base"] is None
            continue
        # paired: the same resampling indices over the per-question differences
        d = [a - b for a, b in zip(v, nll["base"])]
        lo, hi = bootstrap_ci(d, RESAMPLES, SEED)
        vs = m["vs_base"]
        assert vs["mean"] == pytest.approx(sum(d) / len(d), rel=1e-9, abs=1e-15)
        assert (vs["ci_low"], vs["ci_high"]) == (pytest.approx(lo, rel=1e-9, abs=1e-15),
                                                 pytest.approx(hi, rel=1e-9, abs=1e-15))
        assert stored["phase3.reference_nll_vs_base"] == pytest.approx(vs["mean"], rel=1e-9)


def test_an_adapter_by_path_is_a_model_of_its_own(run_meteor, run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    adapter = copy / "adapters" / "phase3"
    run_meteor("eval", "--run", copy, "--models", f"base,adapter:{adapter}", *EVAL)
    summary = json.loads((copy / "eval" / "summary.json").read_text())
    by_name = {m["name"]: m for m in summary["models"]}
    ours = json.loads((run / "eval" / "summary.json").read_text())["models"][1]
    # the same adapter gives the same numbers under its other name
    assert by_name[f"adapter:{adapter}"]["reference_nll"] == ours["reference_nll"]
    assert by_name[f"adapter:{adapter}"]["vs_base"] == ours["vs_base"]


@pytest.mark.parametrize("args,message", [
    (["--models", "base,phase9"], "unknown model 'phase9'"),
    (["--models", "base,phase2"], "this run has no phase2 adapter"),
    (["--models", "adapter:/nonexistent/adapter"], "no PEFT adapter in /nonexistent/adapter"),
    (["--models", "base,base"], "--models names base twice"),
    (["--models", "base,,phase3"], "--models has an empty name"),
])
def test_bad_models_are_refused(run_meteor, run, args, message):
    p = run_meteor("eval", "--run", run, *args, *EVAL, check=False)
    assert p.returncode != 0
    assert message in error_line(p)


def test_a_run_without_a_test_split_is_refused(run_meteor, run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with sqlite3.connect(copy / "run.db") as c:
        c.execute("update questions set split='train'")
    p = run_meteor("eval", "--run", copy, *EVAL, check=False)
    assert p.returncode != 0
    assert "no held-out test questions" in error_line(p)


def test_a_folder_that_is_no_run_is_refused(run_meteor, tmp_path):
    p = run_meteor("eval", "--run", tmp_path / "nothing", *EVAL, check=False)
    assert p.returncode != 0
    assert "is not a run directory" in error_line(p)
    assert not (tmp_path / "nothing").exists()
