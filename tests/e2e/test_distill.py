"""METEOR phase 1 end to end: `meteor distill` on the real small models, against a real
OpenAI-compatible server on loopback (llama.cpp's, from llama-cpp-python[server]) and with the
local in-process expert; with the fault proxy in between; killed with SIGKILL at several points
and restarted; and fed bad input.

Outputs are kept short (guidelines 24 tokens, answers 40) so every run takes seconds. The server
answers greedily (temperature 0) and, where two runs are compared, each run gets a fresh server
and sends its requests one at a time in the same order, so both see identical computations.
The fault test puts the proxy in front of a canned server instead: how long a real model
takes to answer depends on the machine, and that test's outcome must depend only on its seed.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import http.server
from pathlib import Path

import pytest

from e2e.fault_proxy import ALL_FAULTS, fault_for
from e2e.test_status import status_text_from_json
from e2e.servers import LlamaServer

N_QUESTIONS = 5  # 4 train + 1 test with --test-fraction 0.25 and seed 42 (checked below)

FAST = [
    "--guideline-max-tokens", "24", "--answer-max-tokens", "40", "--test-fraction", "0.25",
    "--seed", "42", "-t", "2", "--epochs", "1", "--max-len", "192", "--batch-size", "2",
    "--quiet",
]


@pytest.fixture(scope="module")
def questions(repo_root, tmp_path_factory):
    """The first N_QUESTIONS of the bundled Python FAQ, in METEOR's raw format."""
    rows = []
    with open(repo_root / "data" / "python_faq.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    path = tmp_path_factory.mktemp("questions") / "faq5.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:N_QUESTIONS]), encoding="utf-8")
    return path


def distill(run_meteor, run, model, questions, *expert, extra=(), check=True, env=None):
    return run_meteor("distill", "--run", run, "-m", model, "--questions", questions, *expert,
                      *FAST, *extra, check=check, env=env)


def remote(url, *more):
    return ["--expert-url", url, "--expert-model", "smollm", "--json-mode", "object",
            "--concurrency", "1", *more]


def records(run):
    path = Path(run) / "data" / "distilled.jsonl"
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def db(run):
    return sqlite3.connect(f"file:{Path(run) / 'run.db'}?mode=ro", uri=True)


def train_split(run):
    with db(run) as c:
        return [r[0] for r in c.execute("select id from questions where split='train' order by seq")]


def answered_twice(proxy):
    """Request bodies whose response reached meteor more than once."""
    seen = {}
    for r in proxy.records():
        if r.get("delivered") and r.get("upstream_status") == 200 and r.get("fault") is None:
            seen[r["body_sha256"]] = seen.get(r["body_sha256"], 0) + 1
    return {h: n for h, n in seen.items() if n > 1}


def check_run(run, expert_name):
    ids = train_split(run)
    assert len(ids) == N_QUESTIONS - 1
    recs = records(run)
    assert [r["id"] for r in recs] == ids, "one record per training question, in order"
    for r in recs:
        assert r["question_title"] and r["answer"].strip() and r["guideline"].strip()
        assert r["expert"] == expert_name and r["model"].endswith(".gguf")
    adapter = Path(run) / "adapters" / "phase1"
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "LORA"
    with db(run) as c:
        (test_ids,) = c.execute("select count(*) from questions where split='test'").fetchone()
        assert test_ids == 1
        # The held-out question never reaches the expert or the training data.
        test_id = c.execute("select id from questions where split='test'").fetchone()[0]
        assert test_id not in {r["id"] for r in recs}
    return recs


def test_remote_expert_end_to_end_and_rerun_is_free(run_meteor, smollm_gguf, smollm_server,
                                                    fault_proxy, questions, tmp_path):
    proxy = fault_proxy(smollm_server)  # rate 0: a faithful relay that counts requests
    run = tmp_path / "run"
    args = remote(proxy.url + "/v1")
    distill(run_meteor, run, smollm_gguf, questions, *args)
    recs = check_run(run, "smollm")
    sent = len(proxy.records())
    assert sent == len(recs), "one request per answer, no more"

    # A rerun sends nothing and changes nothing.
    before = (run / "data" / "distilled.jsonl").read_bytes()
    distill(run_meteor, run, smollm_gguf, questions, *args)
    assert len(proxy.records()) == sent
    assert (run / "data" / "distilled.jsonl").read_bytes() == before

    # A new run directory asking the same questions re-asks them; deleting the answers from
    # the run store but not its request cache serves them again at zero cost.
    with sqlite3.connect(run / "run.db") as c:
        c.execute("delete from items where stage='answer'")
        c.execute("delete from records")
        c.execute("delete from items where stage='sft'")
    distill(run_meteor, run, smollm_gguf, questions, *args, extra=["--no-train"])
    assert len(proxy.records()) == sent, "answers came from the request cache"
    assert (run / "data" / "distilled.jsonl").read_bytes() == before

    st = run_meteor("status", run).stdout
    assert "phase1" in st and "answer" in st and "guideline" in st
    # --json carries the same summary: the text is its formatting
    summary = json.loads(run_meteor("status", run, "--json").stdout)
    assert status_text_from_json(run, summary).decode() == st
    assert summary["usage"]["total"]["requests"] == sent
    assert {"phase": "phase1", "stage": "answer", "done": len(recs), "failed": 0} in summary["items"]


def test_local_expert_end_to_end(run_meteor, smollm_gguf, questions, tmp_path):
    # The only instruction-tuned model shipped is SmolLM2 (Gemma 3 270M is a base model), so
    # the in-process expert here is SmolLM2 too: this checks the mechanism, not the quality.
    run = tmp_path / "run"
    distill(run_meteor, run, smollm_gguf, questions, "--expert", f"local:{smollm_gguf}")
    check_run(run, f"local:{smollm_gguf.name}")
    # A rerun generates nothing: the in-process expert's replies are cached like remote ones.
    p = distill(run_meteor, run, smollm_gguf, questions, "--expert", f"local:{smollm_gguf}")
    with db(run) as c:
        (n_requests,) = c.execute("select count(*) from requests").fetchone()
    assert n_requests == N_QUESTIONS - 1


def test_judge_scores_through_the_server(run_meteor, smollm_gguf, smollm_server, questions,
                                         tmp_path):
    run = tmp_path / "run"
    distill(run_meteor, run, smollm_gguf, questions, *remote(smollm_server),
            extra=["--score", "--no-train"])
    recs = records(run)
    with db(run) as c:
        done = c.execute("select count(*) from items where stage='score' and state=1").fetchone()[0]
        failed = c.execute("select count(*) from items where stage='score' and state=2").fetchone()[0]
        metric = c.execute("select value from metrics where name='judge_score_guideline'").fetchone()
    assert done + failed == len(recs)
    assert done > 0, "llama.cpp constrains replies to the schema, so scores parse"
    scored = [r["judge_score"] for r in recs if "judge_score" in r]
    assert len(scored) == done and all(1 <= s <= 10 for s in scored)
    assert metric and abs(metric[0] - sum(scored) / len(scored)) < 1e-9


def answer_requests(run):
    with db(run) as c:
        rows = c.execute("select request from requests where phase='phase1'").fetchall()
    msgs = [json.loads(r[0])["messages"] for r in rows]
    return [m[-1]["content"] for m in msgs if "Rate the quality" not in m[-1]["content"]]


def test_grounded_answers_carry_the_reference(run_meteor, smollm_gguf, questions, tmp_path):
    refs = {json.loads(l)["title"]: json.loads(l)["reference_answer"]
            for l in questions.read_text(encoding="utf-8").splitlines()}
    grounded, plain = tmp_path / "grounded", tmp_path / "plain"
    expert = ["--expert", f"local:{smollm_gguf}"]
    distill(run_meteor, grounded, smollm_gguf, questions, *expert, "--grounded",
            extra=["--no-train"])
    distill(run_meteor, plain, smollm_gguf, questions, *expert, extra=["--no-train"])
    asked = answer_requests(grounded)
    assert len(asked) == N_QUESTIONS - 1
    for text in asked:
        title = text.split("\n", 1)[0].removeprefix("Question title: ")
        assert "Reference answer (trusted" in text and refs[title].strip()[:200] in text
    assert all("Reference answer" not in t for t in answer_requests(plain))
    # A run keeps the grounding it started with: the request cache depends on it.
    p = distill(run_meteor, grounded, smollm_gguf, questions, *expert, extra=["--no-train"],
                check=False)
    assert p.returncode != 0 and "grounding in reference answers on" in p.stderr, p.stderr


def test_local_qwen_judge_scores_all_parse(run_meteor, models_dir, questions, tmp_path):
    """The default pair: Qwen2.5-Coder 0.5B writes guidelines, the 1.5B answers and judges
    in process. Every judge reply is decoded under the score schema, so none is unparsable."""
    weak = models_dir / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    expert = models_dir / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    run = tmp_path / "run"
    distill(run_meteor, run, weak, questions, "--expert", f"local:{expert}",
            extra=["--score", "--no-train"])
    recs = records(run)
    with db(run) as c:
        states = [r[0] for r in c.execute("select state from items where stage='score'")]
    assert states and all(s == 1 for s in states), states
    scored = [r["judge_score"] for r in recs]
    assert len(scored) == len(recs) == N_QUESTIONS - 1
    assert all(isinstance(s, int) and 1 <= s <= 10 for s in scored)


# The fault test's sequence: seed 185 at rate 0.6 faults 17 of the first 21 requests, with
# every kind of fault among them and one delay (each delay costs one client timeout).
FAULT_SEED, FAULT_RATE = 185, 0.6
# The canned expert answers in milliseconds, so a 10 s timeout is never reached by an answer,
# and the proxy holds a delayed request 600 s, so a delay always ends in that timeout.
FAULT_TIMEOUT_S, FAULT_DELAY_S = 10, 600


def expected_fault_sequence(n_items):
    """The faults of requests 1..K, where K is the request that brings the last item its
    answer. Every faulted request fails and every other one succeeds, so K is where the
    n_items-th unfaulted request falls, however the requests of the items interleave."""
    seq, ok, n = [], 0, 0
    while ok < n_items:
        n += 1
        seq.append(fault_for(FAULT_SEED, n, FAULT_RATE, ALL_FAULTS))
        ok += seq[-1] is None
    return seq


def wait_for_records(proxy, count, timeout_s=60):
    """The proxy logs a request once done with it (a delayed one when the client has hung
    up): wait until `count` are logged."""
    deadline = time.monotonic() + timeout_s
    while len(proxy.records()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return proxy.records()


def test_faults_every_item_completes_once(run_meteor, smollm_gguf, canned_server, fault_proxy,
                                          questions, tmp_path):
    proxy = fault_proxy(canned_server.url, seed=FAULT_SEED, rate=FAULT_RATE,
                        delay_s=FAULT_DELAY_S, retry_after=1)
    run = tmp_path / "run"
    args = ["--expert-url", proxy.url + "/v1", "--expert-model", "canned", "--json-mode",
            "object", "--concurrency", "3", "--timeout", str(FAULT_TIMEOUT_S), "--max-retries",
            "25", "--backoff-base", "0.05", "--backoff-max", "0.4"]
    distill(run_meteor, run, smollm_gguf, questions, *args, extra=["--no-train"])
    recs = records(run)
    ids = train_split(run)
    assert sorted(r["id"] for r in recs) == sorted(ids), "every item, none lost or duplicated"

    expected = expected_fault_sequence(len(ids))
    assert set(expected) == {None, *ALL_FAULTS}, "the seed exercises every fault"
    logged = sorted(wait_for_records(proxy, len(expected)), key=lambda r: r["n"])
    assert [r["fault"] for r in logged] == expected, "exactly the seeded requests, no more"
    delayed = [r for r in logged if r["fault"] == "delay"]
    answered = [r for r in logged if r["delivered"]]
    assert len(answered) == len(ids) and all(r["fault"] is None for r in answered)
    # Only answers and the faults made of an answer (truncate, badjson) reach the upstream.
    sent_on = [f in (None, "truncate", "badjson") for f in expected]
    assert [r["forwarded"] for r in logged] == sent_on
    assert len(canned_server.requests()) == sum(sent_on)
    with db(run) as c:
        failed_attempts = c.execute("select count(*) from attempts where error is not null").fetchone()[0]
        ok_attempts = c.execute("select count(*) from attempts where error is null").fetchone()[0]
        timeouts = c.execute("select count(*) from attempts where error like '%timeout%'").fetchone()[0]
        (stored,) = c.execute("select count(*) from requests").fetchone()
    assert stored == ok_attempts == len(ids)
    assert failed_attempts == len(expected) - len(ids), "every fault is one logged retry"
    assert timeouts == len(delayed)
    faults = [f for f in expected if f]
    print(f"\n[faults] {len(expected)} HTTP requests for {len(ids)} answers; injected: "
          + ", ".join(f"{f}={faults.count(f)}" for f in sorted(set(faults))))


def fresh_server(model, tmp_path, name):
    return LlamaServer(model, log_path=tmp_path / f"{name}.log").start()


def test_crash_at_every_stage_resumes_to_the_same_result(run_meteor, smollm_gguf, fault_proxy,
                                                         questions, tmp_path):
    extra = ["--save-every", "1"]
    # Uninterrupted reference on its own fresh server.
    srv = fresh_server(smollm_gguf, tmp_path, "ref")
    try:
        ref = tmp_path / "ref"
        distill(run_meteor, ref, smollm_gguf, questions, *remote(srv.url), extra=extra)
    finally:
        srv.stop()

    srv = fresh_server(smollm_gguf, tmp_path, "crash")
    try:
        proxy = fault_proxy(srv.url)
        run = tmp_path / "crash"
        kills = ["guideline_done:2", "expert_done:1", "expert_done:2", "checkpoint_saved:1"]
        for point in kills:
            env = dict(os.environ, METEOR_FAULT_KILL=point)
            p = distill(run_meteor, run, smollm_gguf, questions, *remote(proxy.url + "/v1"),
                        extra=extra, check=False, env=env)
            assert p.returncode == -signal.SIGKILL, f"{point}: {p.returncode} {p.stderr[-500:]}"
        distill(run_meteor, run, smollm_gguf, questions, *remote(proxy.url + "/v1"), extra=extra)
    finally:
        srv.stop()

    assert (run / "data" / "distilled.jsonl").read_bytes() == (ref / "data" / "distilled.jsonl").read_bytes()
    assert answered_twice(proxy) == {}, "no request was answered twice"
    assert len(proxy.records()) == N_QUESTIONS - 1
    a = (run / "adapters" / "phase1" / "adapter_model.safetensors").read_bytes()
    b = (ref / "adapters" / "phase1" / "adapter_model.safetensors").read_bytes()
    assert a == b, "resumed training ends with the same adapter"


# ---------------------------------------------------------------------------------------
# Bad input: one clear error line, a non-zero exit, nothing half-written.


def error_line(p):
    lines = [l for l in p.stderr.splitlines() if l.startswith("meteor: error:")]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.mark.parametrize("content,expect", [
    ('{"title": "ok", "question_content": "fine"}\n{not json\n', ":2: malformed JSON"),
    ('{"title": "ok"}\n{"category": "x"}\n', ":2: needs"),
    ('{"title": "  ", "question_content": ""}\n', ":1: the question is empty"),
    ('{"question": 7}\n', '"question" must be a string'),
    ('', "has no questions"),
    ('[{"title": "a"}, 3]', ":2: not a JSON object"),
])
def test_bad_question_files(run_meteor, smollm_gguf, tmp_path, content, expect):
    qf = tmp_path / "q.jsonl"
    qf.write_text(content, encoding="utf-8")
    run = tmp_path / "run"
    p = distill(run_meteor, run, smollm_gguf, qf, "--expert-url", "http://127.0.0.1:9/v1",
                "--expert-model", "m", check=False)
    assert p.returncode == 1
    assert expect in error_line(p)
    with db(run) as c:
        assert c.execute("select count(*) from questions").fetchone()[0] == 0
    assert not (run / "data" / "distilled.jsonl").exists()


class _HtmlHandler(http.server.BaseHTTPRequestHandler):
    def _page(self):
        body = b"<html><body>Welcome to nginx!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # meteor may hang up once it has seen the headers
            pass

    do_GET = do_POST = _page

    def log_message(self, *a):
        pass


def test_not_an_openai_endpoint(run_meteor, smollm_gguf, questions, tmp_path):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        run = tmp_path / "run"
        p = distill(run_meteor, run, smollm_gguf, questions, "--expert-url",
                    f"http://127.0.0.1:{srv.server_address[1]}/v1", "--expert-model", "m",
                    extra=["--guideline-max-tokens", "4"], check=False)
    finally:
        srv.shutdown()
    assert p.returncode == 1
    assert "not an OpenAI-compatible endpoint" in error_line(p)
    assert not (run / "data" / "distilled.jsonl").exists()


def test_wrong_key_is_refused_and_never_shown(run_meteor, smollm_gguf, llama_server, questions,
                                              tmp_path):
    url = llama_server(api_key="right-key-123")
    run = tmp_path / "run"
    secret = "wrong-key-SENTINEL-4242"
    env = dict(os.environ, MY_KEY=secret)
    p = distill(run_meteor, run, smollm_gguf, questions, *remote(url, "--api-key-env", "MY_KEY"),
                extra=["--guideline-max-tokens", "4"], check=False, env=env)
    assert p.returncode == 1
    line = error_line(p)
    assert "401" in line
    assert secret not in p.stderr and secret not in p.stdout
    with open(run / "run.db", "rb") as f:
        assert secret.encode() not in f.read()
    assert not (run / "data" / "distilled.jsonl").exists()

    # Unset key variable: a clear error before anything runs.
    env.pop("MY_KEY")
    p = distill(run_meteor, tmp_path / "run2", smollm_gguf, questions,
                *remote(url, "--api-key-env", "MY_KEY"), check=False, env=env)
    assert p.returncode == 1 and "MY_KEY" in error_line(p)


def test_budget_stops_cleanly_and_resumes(run_meteor, smollm_gguf, smollm_server, fault_proxy,
                                          questions, tmp_path):
    proxy = fault_proxy(smollm_server)
    run = tmp_path / "run"
    p = distill(run_meteor, run, smollm_gguf, questions, *remote(proxy.url + "/v1"),
                extra=["--max-requests", "2", "--no-train"], check=False)
    assert p.returncode == 3, p.stderr
    assert "budget" in p.stderr
    assert len(records(run)) == 2 and len(proxy.records()) == 2
    # The next run with a larger budget finishes the rest, asking nothing twice.
    distill(run_meteor, run, smollm_gguf, questions, *remote(proxy.url + "/v1"),
            extra=["--max-requests", "10", "--no-train"])
    assert len(records(run)) == N_QUESTIONS - 1
    assert len(proxy.records()) == N_QUESTIONS - 1
    assert answered_twice(proxy) == {}


def test_dry_run_sends_nothing(run_meteor, smollm_gguf, smollm_server, fault_proxy, questions,
                               tmp_path):
    proxy = fault_proxy(smollm_server)
    run = tmp_path / "run"
    p = distill(run_meteor, run, smollm_gguf, questions, *remote(proxy.url + "/v1"),
                extra=["--dry-run", "--cost-per-1k-prompt", "0.5", "--cost-per-1k-completion", "1.5"])
    assert "expert answers: 4 to request" in p.stdout
    assert "estimated cost" in p.stdout
    assert proxy.records() == []
    assert not (run / "data" / "distilled.jsonl").exists()
