"""METEOR phase 2 end to end: `meteor refine` against a scripted expert on loopback
(e2e/scripted_expert.py), whose verdicts follow a rule, so every attempt, verdict, acceptance
and training round of a run is known in advance and checked exactly.

Phase 1 runs once per module (`meteor distill` against the same scripted server, whose answers
are "EXPERT ANSWER <title>"); each test refines a copy of that run. The weak model is SmolLM2
and outputs are short (attempts of 24 tokens, sequences of 192, one epoch), so a run takes
seconds.

The main scenario, by index in the training split (6 questions, waves of 2, 3 attempts):

    rejections  1  1 | 2  0 | never  0       attempts  2 2 | 3 1 | 3 1
    version     0  0 | 1  1 |   2    2       accepted after wave: 2, 2, 1

so rounds run after wave 0 (2 accepted), after wave 1 (4) and a final one after wave 2 (5).

That scenario, run once uninterrupted (the reference), is repeated killed at every named point,
behind the fault proxy with concurrency 3, and stopped by a budget: each must end with the
reference's bytes (exports, adapter, round datasets) and no request answered twice. Bad input:
a verdict outside the schema, an expert that always fails, a run without phase 1.
"""

import json
import os
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest

from e2e.scripted_expert import Fail, Rejections, ScriptedExpert, expert_answer
from e2e.test_distill import answered_twice, expected_fault_sequence, wait_for_records

N_QUESTIONS = 8  # 6 train + 2 test with the default --test-fraction and seed 42 (checked below)
REJECTIONS = [1, 1, 2, 0, None, 0]
NEVER = 4
MAX_ITER, INTERVAL = 3, 2
ATTEMPTS = [2, 2, 3, 1, 3, 1]
VERSIONS = [0, 0, 1, 1, 2, 2]  # the adapter version of each question's wave
ROUND_SIZES = [2, 4, 5]  # accepted answers so far at each round (no replay)

FAST = ["--attempt-max-tokens", "24", "--max-len", "192", "--epochs", "1", "--batch-size", "2",
        "-t", "2", "--seed", "42", "--quiet"]
SCENARIO = ["--max-iterations", str(MAX_ITER), "--fine-tune-interval", str(INTERVAL),
            "--replay", "0", "--save-every", "1"]
OUTPUTS = ["data/refined.jsonl", "data/trajectories.jsonl",
           "adapters/phase2/adapter_model.safetensors", "adapters/phase2/adapter_config.json"]


def scripted(url, *more):
    return ["--expert-url", url, "--expert-model", "scripted", "--concurrency", "1", *more]


def refine(run_meteor, run, *args, check=True, env=None):
    return run_meteor("refine", "--run", run, *FAST, *args, check=check, env=env)


def jsonl(path):
    return [json.loads(l) for l in Path(path).read_text(encoding="utf-8").splitlines() if l.strip()]


def db(run):
    return sqlite3.connect(f"file:{Path(run) / 'run.db'}?mode=ro", uri=True)


def train_questions(run):
    """[(id, title, reference)] of the training split in import order."""
    with db(run) as c:
        return c.execute("select id, title, reference from questions where split='train' "
                         "order by seq").fetchall()


def metrics(run_meteor, run, phase="phase2"):
    summary = json.loads(run_meteor("status", run, "--json").stdout)
    return {m["name"]: m["value"] for m in summary["metrics"] if m["phase"] == phase}, summary


def error_line(p):
    lines = [l for l in p.stderr.splitlines() if l.startswith("meteor: error:")]
    assert len(lines) == 1, p.stderr
    return lines[0]


def round_files(run):
    d = Path(run) / "train" / "phase2"
    return sorted(d.glob("round-*.jsonl"), key=lambda p: int(p.stem.split("-")[1])) if d.is_dir() else []


def round_strings(path):
    """Every string value in a round's dataset, one set per line."""
    def walk(v):
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            for x in v.values():
                yield from walk(x)
        elif isinstance(v, list):
            for x in v:
                yield from walk(x)
    return [set(walk(r)) for r in jsonl(path)]


def data_files(run):
    """Every file under DIR/data: a failed run leaves no output and no temporary behind."""
    return sorted(p.name for p in (Path(run) / "data").iterdir())


@pytest.fixture(scope="module")
def questions(repo_root, tmp_path_factory):
    """The first N_QUESTIONS of the bundled Python FAQ (each has a reference answer)."""
    lines = (repo_root / "data" / "python_faq.jsonl").read_text(encoding="utf-8").splitlines()
    path = tmp_path_factory.mktemp("questions") / "faq8.jsonl"
    path.write_text("".join(l + "\n" for l in lines[:N_QUESTIONS]), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def phase1(run_meteor, smollm_gguf, questions, tmp_path_factory):
    """A finished phase-1 run: the expert's answers are "EXPERT ANSWER <title>"."""
    run = tmp_path_factory.mktemp("phase1") / "run"
    with ScriptedExpert() as srv:
        run_meteor("distill", "--run", run, "-m", smollm_gguf, "--questions", questions,
                   *scripted(srv.url), "--guideline-max-tokens", "24", "--seed", "42", "-t", "2", "--epochs", "1", "--max-len", "192",
                   "--batch-size", "2", "--quiet")
    assert len(train_questions(run)) == len(REJECTIONS)
    assert (run / "adapters" / "phase1" / "adapter_model.safetensors").is_file()
    return run


def copy_run(phase1, dest):
    shutil.copytree(phase1, dest)
    return dest


def scenario_rule(run):
    return Rejections({t: n for (_, t, _), n in zip(train_questions(run), REJECTIONS)})


def snapshot(run):
    """The bytes of a run's outputs and round datasets, by path in the run."""
    files = {f: (run / f).read_bytes() for f in OUTPUTS}
    files.update({str(p.relative_to(run)): p.read_bytes() for p in round_files(run)})
    return files


@pytest.fixture(scope="module")
def reference(run_meteor, phase1, tmp_path_factory):
    """The scenario, uninterrupted, one request at a time: (run, rule, what the server got,
    snapshot of its outputs right after)."""
    run = copy_run(phase1, tmp_path_factory.mktemp("reference") / "run")
    rule = scenario_rule(run)
    with ScriptedExpert(rule) as srv:
        refine(run_meteor, run, *scripted(srv.url), *SCENARIO)
        received = srv.received()
        twice = srv.answered_twice()
    assert twice == {}, "no request was answered twice"
    return run, rule, received, snapshot(run)


def first_difference(run, ref_files):
    """Where a run's trajectories first part from the reference's: (id, attempt, round)."""
    ours = jsonl(run / "data" / "trajectories.jsonl")
    theirs = [json.loads(l) for l in ref_files["data/trajectories.jsonl"].decode().splitlines()]
    return next(((a["id"], a["attempt"], a["round"]) for a, b in zip(ours, theirs) if a != b),
                None)


def test_control_flow_is_exactly_the_scripted_one(run_meteor, reference, phase1):
    run, rule, received, _ = reference
    qs = train_questions(run)
    ids = [q[0] for q in qs]
    titles = [q[1] for q in qs]
    accepted = [i for i, n in enumerate(REJECTIONS) if n is not None]
    for i, t in enumerate(titles):
        assert rule.expected_attempts(t, MAX_ITER) == ATTEMPTS[i]

    # What the expert was asked: each judged attempt once, wave by wave, numbered 1..K.
    verdicts = [r.verdict for r in received if r.kind == "verdict"]
    assert [r.kind for r in received] == ["verdict"] * len(verdicts), "refine asks only verdicts"
    asked = sorted((titles.index(v.title), v.attempt) for v in verdicts)
    assert asked == [(i, a) for i in range(len(titles)) for a in range(1, ATTEMPTS[i] + 1)]
    assert all(v.max_attempts == MAX_ITER and not v.repair for v in verdicts)
    waves = [titles.index(v.title) // INTERVAL for v in verdicts]
    assert waves == sorted(waves), "a wave's verdicts all come before the next wave's"
    for v in verdicts:
        rf = v.response_format
        assert rf["type"] == "json_schema" and rf["json_schema"]["name"] == "verdict", rf
        assert v.reference is None, "not grounded: no reference answer in the request"
        assert v.system.strip()

    # trajectories.jsonl: every judged attempt, question order then attempt order.
    traj = jsonl(run / "data" / "trajectories.jsonl")
    assert [(t["id"], t["attempt"]) for t in traj] == \
        [(ids[i], a) for i in range(len(ids)) for a in range(1, ATTEMPTS[i] + 1)]
    by_request = {(v.title, v.attempt): v for v in verdicts}
    for t in traj:
        i = ids.index(t["id"])
        assert set(t) == {"id", "attempt", "round", "answer", "verdict", "feedback", "hints",
                          "accepted"}, t
        want = rule.reply(titles[i], t["attempt"])
        assert t["round"] == VERSIONS[i]
        assert (t["verdict"], t["feedback"], t["hints"]) == \
            (want["verdict"], want["feedback"], want["hints"])
        assert t["accepted"] == (want["verdict"] == "correct")
        assert t["answer"].strip() and t["answer"] in by_request[(titles[i], t["attempt"])].user

    # refined.jsonl: the accepted questions in import order, with their accepted attempt.
    refined = jsonl(run / "data" / "refined.jsonl")
    assert [r["id"] for r in refined] == [ids[i] for i in accepted]
    final = {(t["id"]): t for t in traj if t["accepted"]}
    for r in refined:
        i = ids.index(r["id"])
        assert set(r) == {"id", "question_title", "question_content", "answer", "attempts",
                          "round", "source"}, r
        assert (r["question_title"], r["attempts"], r["round"], r["source"]) == \
            (titles[i], ATTEMPTS[i], VERSIONS[i], "model")
        assert r["answer"] == final[r["id"]]["answer"]
        assert r["question_content"].strip()

    # Training rounds: after waves 0 and 1, and a final one; each on everything accepted so far.
    rounds = round_files(run)
    assert [p.name for p in rounds] == [f"round-{r}.jsonl" for r in range(1, len(ROUND_SIZES) + 1)]
    never_texts = {t["answer"] for t in traj if t["id"] == ids[NEVER]}
    accepted_texts = [final[ids[i]]["answer"] for i in accepted]
    for p, size in zip(rounds, ROUND_SIZES):
        lines = round_strings(p)
        assert len(lines) == size, p
        assert not any(titles[NEVER] in s for line in lines for s in line), \
            "a never-accepted question is never trained on"
        assert not any(never_texts & line for line in lines)
        # each line holds one accepted answer: the first `size` accepted, in order
        assert [next(a for a in accepted_texts if a in line) for line in lines] == \
            accepted_texts[:size]
    adapter = run / "adapters" / "phase2"
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert (adapter / "adapter_model.safetensors").read_bytes() != \
        (phase1 / "adapters" / "phase1" / "adapter_model.safetensors").read_bytes()

    # The run store's account of it.
    m, summary = metrics(run_meteor, run)
    assert m["accepted"] == len(accepted) and m["never_accepted"] == 1
    assert m["training_rounds"] == len(ROUND_SIZES) and m["verdict_failures"] == 0
    assert m["first_attempt_acceptance"] == pytest.approx(2 / 6)
    assert m["mean_attempts"] == pytest.approx(sum(ATTEMPTS) / 6)
    for k, share in enumerate([2 / 6, 4 / 6, 5 / 6]):  # accepted within k revisions
        assert m[f"accepted_after_{k}_revisions"] == pytest.approx(share)
    for r, first in enumerate([0.0, 0.5, 0.5]):
        assert m[f"r{r}.questions"] == 2
        assert m[f"r{r}.first_attempt_acceptance"] == pytest.approx(first)
    items = {(i["phase"], i["stage"]): i for i in summary["items"]}
    for stage in ("attempt", "verdict", "sft"):
        assert items[("phase2", stage)]["failed"] == 0 and items[("phase2", stage)]["done"] > 0


def test_rerun_asks_nothing_and_changes_nothing(run_meteor, reference):
    run, rule, _, files = reference
    with ScriptedExpert(rule) as srv:
        refine(run_meteor, run, *scripted(srv.url), *SCENARIO)
        assert srv.received() == []
    assert snapshot(run) == files


def test_a_moved_run_continues(run_meteor, reference, tmp_path):
    """A run directory copied or moved elsewhere continues: it pins nothing that names
    its own old place."""
    ref, rule, _, files = reference
    run = copy_run(ref, tmp_path / "moved")
    with ScriptedExpert(rule) as srv:
        refine(run_meteor, run, *scripted(srv.url), *SCENARIO)
        assert srv.received() == []
    assert snapshot(run) == files


def test_attempts_do_not_depend_on_their_batch(run_meteor, smollm_gguf, phase1, tmp_path):
    """What a resumed wave relies on: with the phase-1 adapter applied, a prompt sampled in a
    batch with another gets the tokens it gets alone (line 0 samples with the same seed)."""
    prompts = ["Why are Python strings immutable? Explain step by step.",
               "What is a lambda in Python and when do I use one?"]
    texts = []
    for batch in (prompts, prompts[:1]):
        f = tmp_path / f"batch{len(batch)}.jsonl"
        f.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in batch), encoding="utf-8")
        out = run_meteor("generate", "-m", smollm_gguf, "--adapter",
                         phase1 / "adapters" / "phase1", "--batch", f, "--chat", "-n", "48",
                         "-t", "2", "-q").stdout
        texts.append(json.loads(out.splitlines()[0])["text"])
    assert texts[0] == texts[1]


def test_kill_at_every_point_resumes_to_the_same_result(run_meteor, reference, phase1, tmp_path):
    _, rule, _, files = reference
    run = copy_run(phase1, tmp_path / "run")
    # Each run dies at its point; the next one resumes there. Waves of 2 questions, one
    # request at a time, one training step per 2 examples:
    kills = [
        "attempt_done:3",       # wave 0: one of its two revisions stored (mid-generation)
        "expert_done:1",        # the other one written alone, one revision's verdict stored
        "checkpoint_saved:1",   # the other verdict; inside round 1
        "refine_round_done:1",  # round 1 resumed and finished: between rounds
        "expert_done:2",        # wave 1: both first verdicts stored
        "attempt_done:1",       # question 2's revision stored
        "expert_done:2",        # its 2nd and 3rd verdicts stored
        "checkpoint_saved:1",   # inside round 2 (2 steps)
        "refine_round_done:1",  # round 2 finished
        "attempt_done:2",       # wave 2: both first attempts stored
    ]
    with ScriptedExpert(rule) as srv:
        for point in kills:
            env = dict(os.environ, METEOR_FAULT_KILL=point)
            p = refine(run_meteor, run, *scripted(srv.url), *SCENARIO, check=False, env=env)
            assert p.returncode == -signal.SIGKILL, f"{point}: {p.returncode} {p.stderr[-800:]}"
        refine(run_meteor, run, *scripted(srv.url), *SCENARIO)
        assert srv.answered_twice() == {}, "no request was answered twice"
        n_verdicts = len(srv.verdict_requests())
    assert n_verdicts == sum(ATTEMPTS)
    assert first_difference(run, files) is None, "first attempt that differs (id, attempt, round)"
    assert snapshot(run) == files


def test_budget_stops_cleanly_and_resumes(run_meteor, reference, phase1, tmp_path):
    _, rule, _, files = reference
    run = copy_run(phase1, tmp_path / "run")
    # The budget counts the whole run's requests: phase 1 sent one per question.
    budget = len(REJECTIONS) + 3
    with ScriptedExpert(rule) as srv:
        p = refine(run_meteor, run, *scripted(srv.url), *SCENARIO, "--max-requests", budget,
                   check=False)
        assert p.returncode == 3, p.stderr
        assert "budget" in p.stderr
        assert len(srv.verdict_requests()) == 3
        assert not (run / "adapters" / "phase2").exists()
        refine(run_meteor, run, *scripted(srv.url), *SCENARIO)
        assert len(srv.verdict_requests()) == sum(ATTEMPTS)
        assert srv.answered_twice() == {}
    assert first_difference(run, files) is None
    assert snapshot(run) == files


# The fault test's sequence: seed 185 at rate 0.6 faults 17 of the first 21 requests, with
# every kind of fault among them (test_distill checks it for 4 items; here it runs longer).
FAULT_SEED, FAULT_RATE = 185, 0.6
FAULT_TIMEOUT_S, FAULT_DELAY_S = 5, 600


def test_faults_every_verdict_completes_once(run_meteor, reference, phase1, fault_proxy,
                                             tmp_path):
    _, rule, _, files = reference
    run = copy_run(phase1, tmp_path / "run")
    with ScriptedExpert(rule) as srv:
        proxy = fault_proxy(srv.url, seed=FAULT_SEED, rate=FAULT_RATE, delay_s=FAULT_DELAY_S,
                            retry_after=1)
        args = ["--expert-url", proxy.url + "/v1", "--expert-model", "scripted", "--json-mode",
                "object", "--concurrency", "3", "--timeout", str(FAULT_TIMEOUT_S),
                "--max-retries", "25", "--backoff-base", "0.05", "--backoff-max", "0.4"]
        refine(run_meteor, run, *args, *SCENARIO)
        verdicts = srv.verdict_requests()
    expected = expected_fault_sequence(sum(ATTEMPTS))
    logged = sorted(wait_for_records(proxy, len(expected)), key=lambda r: r["n"])
    assert [r["fault"] for r in logged] == expected, "exactly the seeded requests, no more"
    assert answered_twice(proxy) == {}, "no verdict reached meteor twice"
    assert sum(r["delivered"] for r in logged) == sum(ATTEMPTS)
    assert all(v.response_format["type"] == "json_object" for v in verdicts)
    # Concurrency, retries and the JSON mode change nothing in the outcome.
    assert first_difference(run, files) is None
    assert snapshot(run) == files
    m, _ = metrics(run_meteor, run)
    assert m["verdict_failures"] == 0
    faults = [f for f in expected if f]
    print(f"\n[faults] {len(expected)} HTTP requests for {sum(ATTEMPTS)} verdicts; injected: "
          + ", ".join(f"{f}={faults.count(f)}" for f in sorted(set(faults))))


def test_on_reject_expert_answer_uses_phase1(run_meteor, phase1, tmp_path):
    run = copy_run(phase1, tmp_path / "run")
    qs = train_questions(run)
    with ScriptedExpert(scenario_rule(run)) as srv:
        refine(run_meteor, run, *scripted(srv.url), "--max-iterations", str(MAX_ITER),
               "--fine-tune-interval", str(INTERVAL), "--on-reject", "expert-answer")
    refined = jsonl(run / "data" / "refined.jsonl")
    assert [r["id"] for r in refined] == [q[0] for q in qs], "every question, in import order"
    for r, (qid, title, _), n in zip(refined, qs, REJECTIONS):
        if n is None:
            assert (r["source"], r["attempts"], r["answer"]) == ("expert", MAX_ITER,
                                                                 expert_answer(title))
        else:
            assert r["source"] == "model" and r["attempts"] == n + 1
            assert r["answer"] != expert_answer(title)
    # The never-accepted question is trained on phase 1's answer; the default replay (0.25)
    # adds a third as many phase-1 records as there are trained answers (rounded) to each
    # round; the model's rejected attempts are never trained on.
    traj = jsonl(run / "data" / "trajectories.jsonl")
    rejected = {t["answer"] for t in traj if not t["accepted"]} - \
        {t["answer"] for t in traj if t["accepted"]}
    rounds = [jsonl(p) for p in round_files(run)]
    assert [len(r) for r in rounds] == [2 + 1, 4 + 1, 6 + 2]
    assert [sum(l.get("source") == "replay" for l in r) for r in rounds] == [1, 1, 2]
    never = qs[NEVER][0]
    assert [[l["answer"] for l in r if l["id"] == never and l.get("source") != "replay"]
            for r in rounds] == [[], [], [expert_answer(qs[NEVER][1])]]
    for r in rounds:
        for l in r:
            assert l["answer"] not in rejected
            if l.get("source") == "replay":
                assert l["answer"] == expert_answer(l["question_title"])


def test_grounded_verdicts_carry_the_reference(run_meteor, phase1, tmp_path):
    run = copy_run(phase1, tmp_path / "run")
    qs = train_questions(run)
    with ScriptedExpert(Rejections({})) as srv:
        refine(run_meteor, run, *scripted(srv.url), "--grounded", "--no-train")
        verdicts = srv.verdict_requests()
    assert sorted(v.title for v in verdicts) == sorted(q[1] for q in qs)
    refs = {t: ref for _, t, ref in qs}
    for v in verdicts:
        assert refs[v.title], "every FAQ question has a reference answer"
        assert v.reference is not None and refs[v.title].strip()[:200] in v.reference
    assert not round_files(run), "--no-train: no rounds"
    assert len(jsonl(run / "data" / "refined.jsonl")) == len(qs)


def test_schema_violation_is_a_failed_verdict_never_accepted(run_meteor, phase1, tmp_path):
    run = copy_run(phase1, tmp_path / "run")
    qs = train_questions(run)
    bad_title = qs[1][1]
    good = Rejections({})

    def rule(req):
        if req.title == bad_title:
            return {"verdict": "maybe", "feedback": "unsure", "hints": []}
        return good(req)

    retry = ["--max-retries", "1", "--backoff-base", "0.01", "--backoff-max", "0.02"]
    with ScriptedExpert(rule) as srv:
        p = refine(run_meteor, run, *scripted(srv.url, *retry), "--no-train",
                   "--fine-tune-interval", "2", check=False)
        srv_titles = srv.verdict_requests()
        bad = [v for v in srv_titles if v.title == bad_title]
    assert p.returncode == 1, p.stderr
    assert "1 verdict failed" in error_line(p)
    # Retried (with meteor's one repair turn each time), always the first attempt: a reply
    # that is no verdict never counts as a rejection.
    assert len(bad) >= 2 and all(v.attempt == 1 for v in bad)
    # The phase stopped after the failed verdict's wave (questions 0 and 1); what it has is
    # exported, the failed attempt without a verdict.
    assert {v.title for v in srv_titles} == {qs[0][1], qs[1][1]}
    assert [r["id"] for r in jsonl(run / "data" / "refined.jsonl")] == [qs[0][0]]
    traj = jsonl(run / "data" / "trajectories.jsonl")
    assert [(t["id"], t["verdict"], t["accepted"]) for t in traj] == \
        [(qs[0][0], "correct", True), (qs[1][0], None, False)]
    m, _ = metrics(run_meteor, run)
    assert m["verdict_failures"] == 1

    # Once the expert answers properly, a rerun judges that attempt and finishes.
    with ScriptedExpert(good) as srv:
        refine(run_meteor, run, *scripted(srv.url, *retry), "--no-train", "--fine-tune-interval",
               "2")
        again = srv.verdict_requests()
    assert [(v.title, v.attempt) for v in again] == [(q[1], 1) for q in qs[1:]]
    assert [r["id"] for r in jsonl(run / "data" / "refined.jsonl")] == [q[0] for q in qs]
    m, _ = metrics(run_meteor, run)
    assert m["verdict_failures"] == 0


def test_expert_always_failing_is_a_clear_error(run_meteor, phase1, tmp_path):
    run = copy_run(phase1, tmp_path / "run")
    qs = train_questions(run)
    with ScriptedExpert(lambda req: Fail(500, "scripted outage")) as srv:
        p = refine(run_meteor, run, *scripted(srv.url, "--max-retries", "1", "--backoff-base",
                                              "0.01", "--backoff-max", "0.02"),
                   "--fine-tune-interval", "2", check=False)
        asked = srv.verdict_requests()
    assert p.returncode == 1, p.stderr
    assert "2 verdicts failed" in error_line(p)
    # One retry each, first wave only, then it stops: no training, no phase-2 adapter.
    assert sorted((v.title, v.attempt) for v in asked) == \
        sorted([(qs[0][1], 1), (qs[1][1], 1)] * 2)
    assert not (run / "adapters" / "phase2").exists() and not round_files(run)
    # The exports are whole files (written atomically): nothing accepted, no verdicts.
    assert data_files(run) == ["distilled.jsonl", "refined.jsonl", "trajectories.jsonl"]
    assert jsonl(run / "data" / "refined.jsonl") == []
    traj = jsonl(run / "data" / "trajectories.jsonl")
    assert [(t["id"], t["verdict"], t["accepted"]) for t in traj] == \
        [(qs[0][0], None, False), (qs[1][0], None, False)]


def test_run_without_phase1_needs_an_adapter_choice(run_meteor, smollm_gguf, questions, tmp_path):
    run = tmp_path / "run"
    with ScriptedExpert(Rejections({})) as srv:
        p = refine(run_meteor, run, "-m", smollm_gguf, "--questions", questions,
                   *scripted(srv.url), check=False)
        assert srv.received() == []
        assert p.returncode == 1, p.stderr
        line = error_line(p)
        assert "adapters/phase1" in line and "--adapter" in line and "--no-adapter" in line, line
        assert not (run / "data" / "refined.jsonl").exists()

        # With --no-adapter it starts from the bare model.
        refine(run_meteor, run, "-m", smollm_gguf, "--questions", questions, "--no-adapter",
               "--no-train", *scripted(srv.url))
        n_verdicts = len(srv.verdict_requests())
    train = train_questions(run)
    assert [r["id"] for r in jsonl(run / "data" / "refined.jsonl")] == [q[0] for q in train]
    assert n_verdicts == len(train)


def test_refine_keeps_the_runs_split(run_meteor, smollm_gguf, questions, tmp_path):
    """A run split by phase 1 with a non-default --test-fraction: refine works on that
    split without being told the fraction again."""
    run = tmp_path / "run"
    run_meteor("distill", "--run", run, "-m", smollm_gguf, "--questions", questions,
               "--expert-url", "http://127.0.0.1:9/v1", "--expert-model", "x", "--dry-run",
               "--test-fraction", "0.5", "--seed", "42")
    train = train_questions(run)
    with ScriptedExpert(Rejections({})) as srv:
        refine(run_meteor, run, "--no-adapter", "--no-train", *scripted(srv.url))
        asked = sorted(v.title for v in srv.verdict_requests())
    assert asked == sorted(q[1] for q in train)
    assert train_questions(run) == train
