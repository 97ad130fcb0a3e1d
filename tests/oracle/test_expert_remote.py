"""The remote expert (src/expert/remote*.c) against a scripted fake OpenAI server.

The fake server (stdlib http.server on 127.0.0.1, port 0, in a thread) picks what to do
with each request from a script keyed by the request's first user message: the n-th request
with key K gets script[K][n] (the last entry repeats). The client is driven through
build/tools/expert_tool, which prints one JSON line per attempt, per finished request and a
summary. Assertions are on what was sent and reported (attempt counts and order); time
enters only as a lower bound where the client must have waited. No outcome hangs on how
fast anything runs: a request meant to time out or to be cancelled "hangs" (the server never
answers it; it waits for the client to hang up), and a wait that others must finish inside
(Retry-After) is thousands of times longer than their instant canned answers.
"""

import json
import os
import select
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SENTINEL_KEY = "sk-SENTINEL-d0n0tpr1nt-4242"

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["correct", "incorrect"]},
        "feedback": {"type": "string"},
    },
    "required": ["verdict"],
}


def completion(content, prompt_tokens=10, completion_tokens=5):
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "fake-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def status(code, body, headers=None):
    return ("status", code, body, headers or {})


HANG_LIMIT_S = 120  # longer than any run_tool call: a hung request ends with its client


def wait_for_hangup(sock, limit_s):
    """Block until the client closes or resets the connection (it sends nothing more once
    its request is read), or limit_s passes."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], deadline - time.monotonic())
        if readable:
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":
                    return
            except OSError:
                return
            time.sleep(0.05)  # stray bytes, not a hang-up: keep waiting


class FakeOpenAI:
    """Actions: "ok" (answer "answer to KEY"), ("content", text), ("status", code, body,
    headers) (body: dict → JSON, str → as is; the token "{AUTH}" in a str body is replaced
    by the request's Authorization header, to prove the client redacts echoed keys),
    "hang" (never answer; return once the client hangs up, or after HANG_LIMIT_S), "drop"
    (close without a response), "truncate" (Content-Length beyond the bytes sent),
    "badjson", "html", ("call", fn) with fn(body) -> action."""

    def __init__(self, script=None, default="ok", wait_for_peak=0, hold=0.0):
        self.script = script or {}
        self.default = default
        self.wait_for_peak = wait_for_peak  # handlers wait (≤ 30 s) until this many overlap
        self.hold = hold  # seconds each handler keeps its slot (lets overlaps happen)
        self.log = []
        self.counts = {}
        self.active = 0
        self.peak = 0
        self.tls = threading.local()
        self.cond = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                fake.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def arrivals(self, key=None):
        with self.cond:
            return [e for e in self.log if key is None or e["key"] == key]

    def handle(self, h):
        raw = h.rfile.read(int(h.headers.get("Content-Length", 0)))
        body = json.loads(raw)
        key = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
        key = key.split("\n", 1)[0]  # json mode none appends the schema to it
        with self.cond:
            n = self.counts.get(key, 0)
            self.counts[key] = n + 1
            actions = self.script.get(key, [self.default])
            action = actions[min(n, len(actions) - 1)]
            self.log.append(
                {
                    "key": key,
                    "n": n,
                    "body": body,
                    "auth": h.headers.get("Authorization"),
                    "path": h.path,
                    "t": time.monotonic(),
                }
            )
            self.active += 1
            self.tls.counted = True
            self.peak = max(self.peak, self.active)
            self.cond.notify_all()
            if self.wait_for_peak:
                self.cond.wait_for(lambda: self.peak >= self.wait_for_peak, timeout=30)
        try:
            if self.hold:
                time.sleep(self.hold)
            self.perform(h, action, body, key)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on us (timeout test)
        finally:
            self.leave()

    def leave(self):
        # A request stops counting as active before its response goes out: the client may
        # send its next request the moment the response arrives, before this thread runs on.
        with self.cond:
            if getattr(self.tls, "counted", False):
                self.tls.counted = False
                self.active -= 1

    def send(self, h, code, payload, content_type="application/json", headers=None, length=None):
        data = payload if isinstance(payload, bytes) else payload.encode()
        self.leave()
        h.send_response(code)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data) if length is None else length))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def perform(self, h, action, body, key):
        if callable(action):
            action = action(body)
        if action == "ok":
            return self.send(h, 200, json.dumps(completion(f"answer to {key}")))
        kind = action[0] if isinstance(action, tuple) else action
        if kind == "content":
            return self.send(h, 200, json.dumps(completion(action[1])))
        if kind == "status":
            _, code, payload, headers = action
            headers = dict(headers)
            if isinstance(payload, str):
                payload = payload.replace("{AUTH}", h.headers.get("Authorization") or "")
            text = payload if isinstance(payload, str) else json.dumps(payload)
            ctype = headers.pop("Content-Type", None)
            ctype = ctype or ("application/json" if not isinstance(payload, str) else "text/plain")
            return self.send(h, code, text, ctype, headers)
        if kind == "hang":
            self.leave()
            h.close_connection = True
            wait_for_hangup(h.connection, HANG_LIMIT_S)
            return None
        if kind == "drop":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return None
        if kind == "truncate":
            full = json.dumps(completion(f"answer to {key}")).encode()
            self.send(h, 200, full[: len(full) // 2], length=len(full))
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return None
        if kind == "badjson":
            return self.send(h, 200, '{"choices": [{"message": {"content": "x"')
        if kind == "html":
            return self.send(h, 200, "<html><body>Welcome to nginx!</body></html>", "text/html")
        raise AssertionError(f"unknown action {action!r}")


def req(key, schema=None, **extra):
    r = {
        "messages": [
            {"role": "system", "content": "You are a test."},
            {"role": "user", "content": key},
        ],
        "max_tokens": 32,
        "temperature": 0,
    }
    if schema is not None:
        r["schema"] = schema
        r["schema_name"] = "verdict"
    r.update(extra)
    return r


class Result:
    def __init__(self, proc):
        self.proc = proc
        self.rc = proc.returncode
        self.stdout, self.stderr = proc.stdout, proc.stderr
        # Under METEOR_BUILD=build-asan a leak or UB report must fail even an expected exit.
        assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
        lines = [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]
        self.attempts = [l for l in lines if "attempt_of" in l]
        self.done_list = [l for l in lines if "index" in l]
        self.done = {l["index"]: l for l in self.done_list}
        summaries = [l for l in lines if l.get("summary")]
        assert len(summaries) == 1, proc.stdout
        self.summary = summaries[0]

    def attempts_of(self, i):
        return [a for a in self.attempts if a["attempt_of"] == i]


@pytest.fixture(scope="session")
def expert_tool(build_dir) -> Path:
    exe = build_dir / "tools" / "expert_tool"
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        pytest.fail(f"{exe} is missing: build it with `make`", pytrace=False)
    return exe


@pytest.fixture
def run_tool(expert_tool, tmp_path):
    def run(server_url, requests, *args, env=None, timeout=60):
        path = tmp_path / "requests.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in requests))
        cmd = [
            str(expert_tool),
            str(path),
            "--url",
            server_url,
            "--model",
            "fake-model",
            "--backoff-base",
            "0.01",
            "--backoff-max",
            "0.05",
            *map(str, args),
        ]
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
        return Result(proc)

    return run


def assert_each_done_once(res, n):
    indices = [d["index"] for d in res.done_list]
    assert sorted(indices) == list(range(n)), res.stdout
    for i in range(n):
        nums = [a["attempt"] for a in res.attempts_of(i)]
        assert nums == list(range(1, res.done[i]["attempts"] + 1)), (i, nums)


# ---- the happy path ------------------------------------------------------------------


def test_success_request_shape_and_usage(run_tool):
    with FakeOpenAI() as srv:
        res = run_tool(srv.url, [req("q0"), req("q1"), req("q2")], "--concurrency", 2)
    assert res.rc == 0, res.stderr
    assert_each_done_once(res, 3)
    for i in range(3):
        d = res.done[i]
        assert d["ok"] and d["content"] == f"answer to q{i}" and d["error"] is None
        assert d["attempts"] == 1 and d["http_status"] == 200
        assert d["prompt_tokens"] == 10 and d["completion_tokens"] == 5
        (a,) = res.attempts_of(i)
        assert a["http_status"] == 200 and a["error"] is None and a["seconds"] >= 0
    s = res.summary
    assert s["status"] == "ok" and s["requests_sent"] == 3
    assert s["prompt_tokens"] == 30 and s["completion_tokens"] == 15
    assert len(srv.log) == 3
    for e in srv.log:
        assert e["path"] == "/v1/chat/completions"
        assert e["auth"] is None
        b = e["body"]
        assert b["model"] == "fake-model" and b["max_tokens"] == 32 and b["temperature"] == 0
        assert b["messages"][0] == {"role": "system", "content": "You are a test."}
        assert "response_format" not in b


def test_api_key_sent_as_bearer(run_tool):
    with FakeOpenAI() as srv:
        res = run_tool(srv.url + "/", [req("q0")], "--key-env", "MT_TEST_KEY", env={"MT_TEST_KEY": SENTINEL_KEY})
    assert res.rc == 0, res.stderr
    assert srv.log[0]["auth"] == f"Bearer {SENTINEL_KEY}"
    assert srv.log[0]["path"] == "/v1/chat/completions"  # trailing slash of the URL tolerated
    assert SENTINEL_KEY not in res.stdout + res.stderr


# ---- transient failures --------------------------------------------------------------


def test_429_honours_retry_after(run_tool):
    script = {"q0": [status(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"}), "ok"]}
    with FakeOpenAI(script) as srv:
        res = run_tool(srv.url, [req("q0")])
    assert res.rc == 0, res.stderr
    d = res.done[0]
    assert d["ok"] and d["attempts"] == 2 and d["http_status"] == 200
    first, second = res.attempts_of(0)
    assert first["http_status"] == 429 and "HTTP 429" in first["error"] and "slow down" in first["error"]
    assert second["http_status"] == 200 and second["error"] is None
    t = [e["t"] for e in srv.arrivals("q0")]
    assert len(t) == 2 and t[1] - t[0] >= 0.9  # waited for Retry-After, not the 10 ms backoff


TRANSIENT = {
    "s500": (status(500, "internal error {AUTH}"), 500, "HTTP 500"),
    "s503": (status(503, {"error": {"message": "overloaded"}}), 503, "overloaded"),
    "s502": (status(502, "<html>bad gateway</html>", {"Content-Type": "text/html"}), 502, "HTTP 502"),
    "drop": ("drop", 0, "without a response"),
    "trunc": ("truncate", 200, "truncated"),
    "badjson": ("badjson", 200, "not valid JSON"),
    "nochoice": (status(200, {"object": "chat.completion", "choices": []}), 200, "no choices[0].message.content"),
    "html": ("html", 200, "not JSON (Content-Type text/html"),
}


def test_transient_failures_are_retried(run_tool):
    keys = list(TRANSIENT)
    script = {k: [v[0], "ok"] for k, v in TRANSIENT.items()}
    # "first" succeeds first so that the endpoint is known to speak JSON before the HTML reply.
    with FakeOpenAI(script) as srv:
        res = run_tool(
            srv.url,
            [req("first")] + [req(k) for k in keys],
            "--concurrency", 1, "--key-env", "MT_TEST_KEY",
            env={"MT_TEST_KEY": SENTINEL_KEY},
        )
    assert res.rc == 0, res.stderr
    assert_each_done_once(res, len(keys) + 1)
    for i, k in enumerate(keys, start=1):
        d = res.done[i]
        assert d["ok"] and d["content"] == f"answer to {k}", (k, d)
        assert d["attempts"] == 2, (k, d)
        first, second = res.attempts_of(i)
        _, want_status, want_text = TRANSIENT[k]
        assert first["http_status"] == want_status, (k, first)
        assert want_text in first["error"], (k, first)
        assert second["error"] is None
        assert len(srv.arrivals(k)) == 2
    assert SENTINEL_KEY not in res.stdout + res.stderr  # the 500 body echoed it


def test_timeout_is_retried(run_tool):
    with FakeOpenAI({"q0": ["hang", "ok"]}) as srv:
        res = run_tool(srv.url, [req("q0")], "--timeout", 2)
    assert res.rc == 0, res.stderr
    d = res.done[0]
    assert d["ok"] and d["attempts"] == 2
    first, second = res.attempts_of(0)
    assert first["http_status"] == 0 and "timeout" in first["error"]
    assert first["seconds"] >= 1.9
    assert second["error"] is None


def test_gives_up_after_max_retries(run_tool):
    with FakeOpenAI({"q0": [status(503, "busy")]}) as srv:
        res = run_tool(srv.url, [req("q0"), req("q1")], "--retries", 2)
    assert res.rc == 0, res.stderr  # a failed request is not a failed run
    assert_each_done_once(res, 2)
    d = res.done[0]
    assert not d["ok"] and d["attempts"] == 3 and d["http_status"] == 503
    assert d["error"].startswith("gave up after 3 attempts") and "HTTP 503" in d["error"]
    assert len(srv.arrivals("q0")) == 3
    assert res.done[1]["ok"]


def test_waiting_retry_does_not_block_others(run_tool):
    # 3 s of Retry-After against four instant answers: the order below is not a race.
    script = {"slow": [status(429, "later", {"Retry-After": "3"}), "ok"]}
    with FakeOpenAI(script) as srv:
        res = run_tool(srv.url, [req("slow")] + [req(f"q{i}") for i in range(4)], "--concurrency", 2)
    assert res.rc == 0, res.stderr
    assert_each_done_once(res, 5)
    # All four others went through while "slow" sat out its Retry-After.
    second_slow = srv.arrivals("slow")[1]["t"]
    assert all(e["t"] < second_slow for e in srv.log if e["key"] != "slow")
    assert [d["index"] for d in res.done_list][-1] == 0


# ---- permanent failures --------------------------------------------------------------


def test_401_aborts_without_leaking_the_key(run_tool):
    script = {
        "q0": [status(401, "{\"error\": {\"message\": \"Incorrect API key provided: {AUTH}\"}}")],
        "q1": ["hang"],
        "q2": ["hang"],
    }
    with FakeOpenAI(script) as srv:
        res = run_tool(
            srv.url,
            [req("q0"), req("q1"), req("q2")],
            "--concurrency", 3, "--key-env", "MT_TEST_KEY",
            env={"MT_TEST_KEY": SENTINEL_KEY},
        )
        assert srv.arrivals("q0")[0]["auth"] == f"Bearer {SENTINEL_KEY}"
    assert res.rc == 4, res.stderr
    assert "refused the API key (HTTP 401" in res.stderr
    assert srv.url in res.stderr
    assert SENTINEL_KEY not in res.stdout + res.stderr
    assert res.done_list == []  # in-flight requests were cancelled, not reported
    assert res.summary["status"] == "remote"
    (a,) = res.attempts_of(0)
    assert a["http_status"] == 401


def test_403_aborts(run_tool):
    with FakeOpenAI({"q0": [status(403, {"error": {"message": "forbidden"}})]}) as srv:
        res = run_tool(srv.url, [req("q0")])
    assert res.rc == 4 and "HTTP 403" in res.stderr


def test_404_is_not_an_openai_endpoint(run_tool):
    page = status(404, "<html>Not Found</html>", {"Content-Type": "text/html"})
    with FakeOpenAI({"q0": [page], "q1": [page]}) as srv:
        res = run_tool(srv.url, [req("q0"), req("q1")], "--concurrency", 1)
    assert res.rc == 4, res.stderr
    assert "is not an OpenAI-compatible endpoint" in res.stderr and "HTTP 404" in res.stderr
    assert res.done_list == [] and len(srv.log) == 1


def test_html_200_first_is_not_an_openai_endpoint(run_tool):
    with FakeOpenAI(default="html") as srv:
        res = run_tool(srv.url, [req("q0")])
    assert res.rc == 4, res.stderr
    assert "not an OpenAI-compatible endpoint" in res.stderr and "text/html" in res.stderr
    assert len(srv.log) == 1


def test_400_fails_the_item_without_retry(run_tool):
    script = {"q0": [status(400, {"error": {"message": "max_tokens is too large: 99999"}}), "ok"]}
    with FakeOpenAI(script) as srv:
        res = run_tool(srv.url, [req("q0"), req("q1")], "--concurrency", 1)
    assert res.rc == 0, res.stderr
    assert_each_done_once(res, 2)
    d = res.done[0]
    assert not d["ok"] and d["attempts"] == 1 and d["http_status"] == 400
    assert "HTTP 400" in d["error"] and "max_tokens is too large" in d["error"]
    assert len(srv.arrivals("q0")) == 1
    assert res.done[1]["ok"]


# ---- structured output ---------------------------------------------------------------


def llama_cpp_python_like(body):
    """llama-cpp-python's server: json_schema is a validation error (500), json_object works."""
    rf = body.get("response_format")
    if rf and rf["type"] == "json_schema":
        detail = [{"type": "literal_error", "loc": ["body", "response_format", "type"],
                   "msg": "Input should be 'text' or 'json_object'"}]
        return status(500, {"detail": detail})
    return ("content", '{"verdict": "correct", "feedback": "fine"}')


def test_response_format_downgrade_to_json_object(run_tool):
    script = {"q0": [llama_cpp_python_like], "q1": [llama_cpp_python_like]}
    with FakeOpenAI(script) as srv:
        res = run_tool(srv.url, [req("q0", VERDICT_SCHEMA), req("q1", VERDICT_SCHEMA)],
                       "--concurrency", 1, "--retries", 0)
    assert res.rc == 0, res.stderr
    d0, d1 = res.done[0], res.done[1]
    assert d0["ok"] and d0["attempts"] == 2  # the fallback is a resend, not a retry
    assert json.loads(d0["content"]) == {"verdict": "correct", "feedback": "fine"}
    assert d0["content"] == '{"verdict":"correct","feedback":"fine"}'
    first, second = res.attempts_of(0)
    assert first["http_status"] == 500 and "response_format" in first["error"]
    assert d1["ok"] and d1["attempts"] == 1  # the client stays downgraded
    sent = [e["body"]["response_format"] for e in srv.log]
    assert sent[0]["type"] == "json_schema"
    assert sent[0]["json_schema"] == {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True}
    assert sent[1] == {"type": "json_object", "schema": VERDICT_SCHEMA}
    assert sent[2]["type"] == "json_object"


def no_response_format(body):
    if "response_format" in body:
        return status(400, {"error": {"message": "Unrecognized request argument: response_format"}})
    return ("content", 'Here: {"verdict": "incorrect"}')


def test_response_format_downgrade_to_none(run_tool):
    with FakeOpenAI({"q0": [no_response_format]}) as srv:
        res = run_tool(srv.url, [req("q0", VERDICT_SCHEMA)], "--retries", 0)
    assert res.rc == 0, res.stderr
    d = res.done[0]
    assert d["ok"] and d["attempts"] == 3 and d["content"] == '{"verdict":"incorrect"}'
    last = srv.log[-1]["body"]
    assert "response_format" not in last
    user = last["messages"][-1]["content"]
    assert user.startswith("q0\n\nReply with only a JSON object matching this JSON Schema: ")
    assert json.loads(user.split("JSON Schema: ", 1)[1]) == VERDICT_SCHEMA


def test_json_mode_flags(run_tool):
    answer = ("content", '{"verdict": "correct"}')
    with FakeOpenAI(default=answer) as srv:
        r1 = run_tool(srv.url, [req("q0", VERDICT_SCHEMA)], "--json-mode", "object")
        r2 = run_tool(srv.url, [req("q0", VERDICT_SCHEMA)], "--json-mode", "none")
    assert r1.rc == 0 and r2.rc == 0
    assert srv.log[0]["body"]["response_format"] == {"type": "json_object", "schema": VERDICT_SCHEMA}
    assert "response_format" not in srv.log[1]["body"]
    assert "matching this JSON Schema" in srv.log[1]["body"]["messages"][-1]["content"]


def test_schema_reply_repaired(run_tool):
    script = {
        "q0": [("content", 'Sure! {"verdict": "maybe"}'),
               ("content", '```json\n{"verdict": "correct", "feedback": "ok",}\n```')],
        "q1": [("content", "I think it is correct.")],
    }
    with FakeOpenAI(script) as srv:
        res = run_tool(srv.url, [req("q0", VERDICT_SCHEMA), req("q1", VERDICT_SCHEMA)],
                       "--concurrency", 1, "--retries", 0)
    assert res.rc == 0, res.stderr
    assert_each_done_once(res, 2)
    d0 = res.done[0]
    assert d0["ok"] and d0["attempts"] == 2
    assert d0["content"] == '{"verdict":"correct","feedback":"ok"}'
    first, second = res.attempts_of(0)
    assert first["http_status"] == 200 and "maybe" in first["error"] and second["error"] is None
    repair = srv.arrivals("q0")[1]["body"]["messages"]
    assert len(repair) == 4
    assert repair[2] == {"role": "assistant", "content": 'Sure! {"verdict": "maybe"}'}
    assert repair[3]["role"] == "user"
    assert repair[3]["content"].startswith("Your reply was not valid JSON matching the schema (")
    assert "maybe" in repair[3]["content"]
    assert repair[3]["content"].endswith("Reply with only the JSON object.")
    d1 = res.done[1]
    assert not d1["ok"] and d1["attempts"] == 2 and "after a repair" in d1["error"]
    assert d1["prompt_tokens"] == 20  # usage summed over both attempts


def test_unparseable_schema_fails_unsent(run_tool):
    with FakeOpenAI() as srv:
        res = run_tool(srv.url, [req("q0", "{not json"), req("q1")])
    assert res.rc == 0, res.stderr
    assert_each_done_once(res, 2)
    assert not res.done[0]["ok"] and res.done[0]["attempts"] == 0
    assert "schema" in res.done[0]["error"]
    assert [e["key"] for e in srv.log] == ["q1"]


# ---- budgets -------------------------------------------------------------------------


def test_request_budget_stops_dispatch(run_tool):
    with FakeOpenAI() as srv:
        res = run_tool(srv.url, [req(f"q{i}") for i in range(6)], "--max-requests", 3,
                       "--concurrency", 2)
    assert res.rc == 3, res.stderr
    assert "request budget of 3 reached" in res.stderr
    assert len(srv.log) == 3 and res.summary["requests_sent"] == 3
    assert sorted(f"q{d['index']}" for d in res.done_list) == sorted(e["key"] for e in srv.log)
    assert all(d["ok"] for d in res.done_list)
    assert res.summary["status"] == "budget"


def test_request_budget_counts_earlier_spending(run_tool):
    with FakeOpenAI() as srv:
        res = run_tool(srv.url, [req(f"q{i}") for i in range(4)], "--max-requests", 5,
                       "--spent-requests", 4)
    assert res.rc == 3 and len(srv.log) == 1 and len(res.done_list) == 1


def test_budget_blocks_a_retry(run_tool):
    with FakeOpenAI({"q0": [status(503, "busy"), "ok"]}) as srv:
        res = run_tool(srv.url, [req("q0"), req("q1")], "--max-requests", 1, "--concurrency", 1)
    assert res.rc == 3, res.stderr
    assert len(srv.log) == 1
    assert [d["index"] for d in res.done_list] == [0]  # sent, so reported; q1 never sent
    d = res.done[0]
    assert not d["ok"] and "budget" in d["error"] and "HTTP 503" in d["error"]


def test_cost_budget(run_tool):
    with FakeOpenAI() as srv:
        res = run_tool(srv.url, [req(f"q{i}") for i in range(5)], "--concurrency", 1,
                       "--cost-prompt", 1, "--cost-completion", 2, "--max-cost", 0.035)
    assert res.rc == 3, res.stderr
    # Each answer costs 10/1000*1 + 5/1000*2 = 0.02: after two (0.04) the budget is spent.
    assert len(srv.log) == 2 and len(res.done_list) == 2
    assert res.summary["cost"] == pytest.approx(0.04)
    assert "cost budget" in res.stderr


# ---- concurrency and bookkeeping -----------------------------------------------------


def test_requests_overlap_up_to_concurrency(run_tool):
    with FakeOpenAI(wait_for_peak=2, hold=0.02) as srv:
        res = run_tool(srv.url, [req(f"q{i}") for i in range(8)], "--concurrency", 4)
    assert res.rc == 0, res.stderr
    assert_each_done_once(res, 8)
    assert 2 <= srv.peak <= 4


def test_concurrency_one_is_serial(run_tool):
    with FakeOpenAI(hold=0.02) as srv:
        res = run_tool(srv.url, [req(f"q{i}") for i in range(4)], "--concurrency", 1)
    assert res.rc == 0 and srv.peak == 1
    assert [e["key"] for e in srv.log] == ["q0", "q1", "q2", "q3"]


def test_on_done_status_aborts_the_batch(run_tool):
    script = {"q1": ["hang"], "q2": ["hang"]}
    with FakeOpenAI(script) as srv:
        res = run_tool(srv.url, [req("q0"), req("q1"), req("q2")], "--concurrency", 3,
                       "--abort-after", 1)
    assert res.rc == 1
    assert "stopped by --abort-after 1" in res.stderr
    assert [d["index"] for d in res.done_list] == [0]


def test_every_request_done_exactly_once_in_a_mixed_run(run_tool):
    kinds = [
        "ok",
        status(500, "oops"),
        "drop",
        "truncate",
        status(429, "later", {"Retry-After": "0"}),
        status(400, {"error": {"message": "bad request"}}),
        "badjson",
        status(503, "busy"),
    ]
    n = 16
    script = {f"q{i}": [kinds[i % len(kinds)], "ok"] for i in range(n)}
    script["q7"] = [status(503, "busy")]  # never recovers
    with FakeOpenAI(script) as srv:
        res = run_tool(srv.url, [req(f"q{i}") for i in range(n)], "--concurrency", 4, "--retries", 3)
    assert res.rc == 0, res.stderr
    assert_each_done_once(res, n)
    for i in range(n):
        d = res.done[i]
        assert d["attempts"] == len(srv.arrivals(f"q{i}")), i
        kind = kinds[i % len(kinds)]
        if i == 7:
            assert not d["ok"] and d["attempts"] == 4
        elif kind[0] == "status" and kind[1] == 400:
            assert not d["ok"] and d["attempts"] == 1
        else:
            assert d["ok"] and d["attempts"] == (1 if kind == "ok" else 2), (i, d)
    assert res.summary["requests_sent"] == len(srv.log)


def test_bad_options(run_tool):
    res = run_tool("ftp://example.com/v1", [req("q0")])
    assert res.rc == 1 and "http:// or https://" in res.stderr
    res = run_tool("http://127.0.0.1:9/v1", [req("q0")], "--concurrency", 0)
    assert res.rc == 1 and "concurrency" in res.stderr


def test_connection_refused_is_retried_then_fails(run_tool):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    res = run_tool(f"http://127.0.0.1:{port}/v1", [req("q0")], "--retries", 2)
    assert res.rc == 0
    d = res.done[0]
    assert not d["ok"] and d["attempts"] == 3 and d["http_status"] == 0
    assert "gave up after 3 attempts" in d["error"] and "connection error" in d["error"]
