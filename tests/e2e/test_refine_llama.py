"""METEOR phase 2 end to end against a real expert: `meteor refine` with SmolLM2 as the weak
model (bare, no phase 1) and SmolLM2 served by llama.cpp's server (llama-cpp-python) as the
expert, through the fault proxy with every kind of fault.

The server decodes verdicts greedily (meteor asks temperature 0) under the verdict schema,
which llama-cpp-python turns into a grammar for `response_format: json_object` with a
`schema`, so every reply that is not cut short is a verdict. The test does not script what the
expert decides; it checks what must hold whatever it decides: every judged attempt has a
verdict, every verdict was asked for and stored exactly once, refined.jsonl is the accepted
attempts, and the outcome is that of an uninterrupted run (its own fresh server, one request
at a time, no proxy). (As it happens, SmolLM2 judges every first attempt here correct, so the
run has no revision; Qwen2.5-Coder 0.5B does too and is several times slower.)

Each run gets a fresh server, so no request of another test changes what it computes. Outputs
are short (attempts 24 tokens, sequences of 192, one epoch; 4 training questions in waves of 2)
so a run takes a minute or less even on a loaded 2-core machine.
"""

import collections
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from e2e.fault_proxy import ALL_FAULTS, fault_for
from e2e.servers import LlamaServer, ServerError
from e2e.test_distill import wait_for_records

N_QUESTIONS = 5  # 4 train + 1 test with the default --test-fraction (0.2) and seed 42
MAX_ITER = 2
FAST = ["--no-adapter", "--attempt-max-tokens", "24", "--verdict-max-tokens", "320",
        "--max-iterations", str(MAX_ITER), "--fine-tune-interval", "2", "--max-len", "192",
        "--epochs", "1", "--batch-size", "2", "-t", "2", "--seed", "42", "--quiet"]

# Seed 582 at rate 0.5 draws every kind of fault before the 4th answered request (9 requests
# in all, the first one delayed), two of them forwarded (truncate, badjson), so the faults cost
# few extra generations; more verdicts (revisions) only add requests after these. A delay is held
# DELAY_S and then forwarded: the client waits it out (TIMEOUT_S is far longer than a reply
# takes here, queued behind another), so a delayed request is an answered one.
FAULT_SEED, FAULT_RATE = 582, 0.5
DELAY_S, TIMEOUT_S = 1, 120
ANSWERED = (None, "delay")
FAILING = ("429", "500", "drop", "truncate", "badjson")
MAX_RUNS = 3  # a run that ends with failed verdicts is rerun, at most this many runs in all


def expected_faults(n_answers):
    """The faults of requests 1..K, K being the request that brings the n_answers-th answer:
    every request faulted with a failing fault fails and every other one is answered, however
    the concurrent requests interleave."""
    seq, answered = [], 0
    while answered < n_answers:
        seq.append(fault_for(FAULT_SEED, len(seq) + 1, FAULT_RATE, ALL_FAULTS))
        answered += seq[-1] in ANSWERED
    return seq


def jsonl(path):
    return [json.loads(l) for l in Path(path).read_text(encoding="utf-8").splitlines() if l.strip()]


def db(run):
    return sqlite3.connect(f"file:{Path(run) / 'run.db'}?mode=ro", uri=True)


def train_ids(run):
    with db(run) as c:
        rows = c.execute("select id from questions where split='train' order by seq")
        return [r[0] for r in rows]


@pytest.fixture(scope="module")
def questions(repo_root, tmp_path_factory):
    lines = (repo_root / "data" / "python_faq.jsonl").read_text(encoding="utf-8").splitlines()
    path = tmp_path_factory.mktemp("questions") / "faq5.jsonl"
    path.write_text("".join(l + "\n" for l in lines[:N_QUESTIONS]), encoding="utf-8")
    return path


def fresh_server(model, log_path):
    try:
        return LlamaServer(model, log_path=log_path).start()
    except ServerError as e:
        pytest.fail(str(e), pytrace=False)


def refine(run_meteor, run, model, questions, url, *more, check=True):
    return run_meteor("refine", "--run", run, "-m", model, "--questions", questions,
                      "--expert-url", url, "--expert-model", "smollm", "--json-mode", "object",
                      *FAST, *more, check=check)


def outcome(run):
    """What a run decided: each attempt without the expert's wording, refined.jsonl's bytes,
    the phase-2 adapter's bytes. The wording is left out because the server evaluates a
    prompt in pieces that depend on what it computed before (it keeps the longest common
    prefix), and a forwarded request whose answer the proxy spoils changes that; the verdict
    itself and everything meteor trains on must not change."""
    traj = [{k: t[k] for k in ("id", "attempt", "round", "answer", "verdict", "accepted")}
            for t in jsonl(run / "data" / "trajectories.jsonl")]
    return (traj, (run / "data" / "refined.jsonl").read_bytes(),
            (run / "adapters" / "phase2" / "adapter_model.safetensors").read_bytes())


def rounds(run):
    """Each training round's dataset, by name."""
    return {p.name: p.read_bytes() for p in (run / "train" / "phase2").glob("round-*.jsonl")}


@pytest.fixture(scope="module")
def reference(run_meteor, smollm_gguf, questions, tmp_path_factory):
    """An uninterrupted run: its own fresh server, one request at a time, no proxy."""
    d = tmp_path_factory.mktemp("reference")
    srv = fresh_server(smollm_gguf, d / "server.log")
    try:
        refine(run_meteor, d / "run", smollm_gguf, questions, srv.url, "--concurrency", "1")
    finally:
        srv.stop()
    return d / "run"


def test_real_expert_through_every_fault_each_verdict_once(run_meteor, smollm_gguf, questions,
                                                           fault_proxy, reference, tmp_path):
    run = tmp_path / "run"
    srv = fresh_server(smollm_gguf, tmp_path / "server.log")
    try:
        proxy = fault_proxy(srv.url, seed=FAULT_SEED, rate=FAULT_RATE, delay_s=DELAY_S,
                            retry_after=1)
        args = ["--concurrency", "2", "--timeout", str(TIMEOUT_S), "--max-retries", "25",
                "--backoff-base", "0.05", "--backoff-max", "0.4"]
        for n_runs in range(1, MAX_RUNS + 1):
            p = refine(run_meteor, run, smollm_gguf, questions, proxy.url + "/v1", *args,
                       check=False)
            if p.returncode != 1 or "failed" not in p.stderr:
                break
        assert p.returncode == 0, f"run {n_runs}: {p.returncode}\n{p.stderr[-3000:]}"
    finally:
        srv.stop()

    # Every judged attempt has a verdict; a question stops at its accepted attempt or at the
    # last one allowed, and trajectories list them question by question, attempt by attempt.
    ids = train_ids(run)
    assert len(ids) == N_QUESTIONS - 1
    traj = jsonl(run / "data" / "trajectories.jsonl")
    per_question = collections.defaultdict(list)
    for t in traj:
        per_question[t["id"]].append(t)
    assert [t["id"] for t in traj] == [i for i in ids for _ in per_question[i]]
    for qid in ids:
        attempts = per_question[qid]
        assert [t["attempt"] for t in attempts] == list(range(1, len(attempts) + 1)), qid
        assert all(t["verdict"] in ("correct", "incorrect") for t in attempts), attempts
        assert all(t["accepted"] == (t["verdict"] == "correct") for t in attempts)
        assert not any(t["accepted"] for t in attempts[:-1]), "judging stops at an acceptance"
        assert attempts[-1]["accepted"] or len(attempts) == MAX_ITER

    # refined.jsonl holds exactly the accepted attempts, in question order.
    accepted = [t for t in traj if t["accepted"]]
    refined = jsonl(run / "data" / "refined.jsonl")
    assert [(r["id"], r["answer"], r["attempts"], r["round"], r["source"]) for r in refined] == \
        [(t["id"], t["answer"], t["attempt"], t["round"], "model") for t in accepted]

    # The proxy saw exactly the seeded sequence: every failing fault is one retry, every other
    # request one verdict; no verdict reached meteor twice.
    expected = expected_faults(len(traj))
    assert set(expected) == {None, *ALL_FAULTS}, "the seed exercises every fault"
    logged = sorted(wait_for_records(proxy, len(expected)), key=lambda r: r["n"])
    assert [r["fault"] for r in logged] == expected, "exactly the seeded requests, no more"
    assert [r["delivered"] for r in logged] == [f in ANSWERED for f in expected]
    delivered = collections.Counter(r["body_sha256"] for r in logged if r["delivered"])
    assert all(n == 1 for n in delivered.values()), "no verdict request answered twice"

    # Each judged attempt's verdict request is stored exactly once in run.db (under the hash of
    # meteor's own form of the request, which does not depend on the JSON mode, so it is not
    # the hash of the body on the wire), and as many were answered as are stored.
    with db(run) as c:
        stored = c.execute("select hash, request from requests where phase='phase2'").fetchall()
        titles = dict(c.execute("select id, title from questions"))
        ok_tries = c.execute("select count(*) from attempts where phase='phase2' and "
                             "error is null").fetchone()[0]
        failed_tries = c.execute("select count(*) from attempts where phase='phase2' and "
                                 "error is not null").fetchone()[0]
        verdict_items = c.execute("select state, count(*) from items where phase='phase2' and "
                                  "stage='verdict' group by state").fetchall()
        failures = c.execute("select value from metrics where phase='phase2' and "
                             "name='verdict_failures' order by id desc").fetchone()
    assert all(h == hashlib.sha256(req.encode()).hexdigest() for h, req in stored)
    users = [json.loads(req)["messages"][-1]["content"] for _, req in stored]
    for t in traj:
        asks = [u for u in users if u.startswith(f"Question: {titles[t['id']]}\n")
                and f"\nAttempt {t['attempt']} of at most {MAX_ITER}\n" in u
                and f"Student's answer:\n{t['answer']}\n" in u]
        assert len(asks) == 1, (t["id"], t["attempt"])
    assert len(stored) == len(traj) == ok_tries == len(delivered)
    assert failed_tries == sum(f in FAILING for f in expected), "every failing fault one retry"
    assert verdict_items == [(1, len(traj))], "every verdict item done, none failed"
    assert failures == (0,)

    # Faults, retries and concurrency change nothing in what was decided and trained.
    assert outcome(run) == outcome(reference)
    assert rounds(run) == rounds(reference) and rounds(run), "the same training rounds"
    faults = [f for f in expected if f]
    print(f"\n[faults] {len(expected)} HTTP requests for {len(traj)} verdicts in {n_runs} "
          f"run(s), {len(accepted)} accepted; injected: "
          + ", ".join(f"{f}={faults.count(f)}" for f in sorted(set(faults))))
