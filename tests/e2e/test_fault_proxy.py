"""The fault proxy (tests/e2e/fault_proxy.py) against a real llama server on loopback.

Requests are tiny (max_tokens 4, temperature 0) so the file runs in seconds. Nothing depends
on timing beyond generous timeouts: the delay fault holds a request 600 s against a 2 s client
timeout (and ends when the client hangs up), or 1 s against a 60 s one.
"""

import hashlib
import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from e2e.fault_proxy import ALL_FAULTS, BAD_JSON, fault_for
from e2e.servers import free_port

PROXY_SCRIPT = Path(__file__).with_name("fault_proxy.py")


def chat_body(content="Say hi.", max_tokens=4):
    return json.dumps({
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }).encode()


def request(port, method="POST", path="/v1/chat/completions", body=None, headers=None, timeout=60):
    """One request on a fresh connection -> (status, headers, body bytes). Exceptions propagate."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def port_of(url):
    return int(url.split(":")[2].split("/")[0])


def wait_records(proxy, count, timeout=30):
    """The proxy writes a record when it is done with a request: wait for `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        recs = proxy.records()
        if len(recs) >= count or time.monotonic() > deadline:
            return sorted(recs, key=lambda r: r["n"])
        time.sleep(0.05)


def comparable(answer):
    """The model's part of a chat completion (id and timestamp differ from call to call)."""
    return {"choices": answer["choices"], "usage": answer["usage"], "model": answer["model"]}


def test_rate0_forwards_faithfully(smollm_server, fault_proxy):
    proxy = fault_proxy(smollm_server, rate=0.0, seed=1)
    direct_port = port_of(smollm_server)
    for prompt in ("Say hi.", "What is Python?"):
        body = chat_body(prompt)
        s1, _, direct = request(direct_port, body=body)
        s2, hdrs, proxied = request(proxy.port, body=body)
        assert s1 == s2 == 200
        assert hdrs["content-type"] == "application/json"
        assert hdrs["connection"] == "close"
        assert comparable(json.loads(proxied)) == comparable(json.loads(direct))
    s, _, models = request(proxy.port, "GET", "/v1/models")
    assert s == 200 and json.loads(models)["data"]

    recs = wait_records(proxy, 3)
    assert [r["n"] for r in recs] == [1, 2, 3]
    assert [r["path"] for r in recs] == ["/v1/chat/completions"] * 2 + ["/v1/models"]
    assert recs[0]["body_sha256"] == hashlib.sha256(chat_body("Say hi.")).hexdigest()
    assert recs[2]["body_sha256"] == hashlib.sha256(b"").hexdigest()
    for r in recs:
        assert r["fault"] is None and r["forwarded"] and r["delivered"], r
        assert r["upstream_status"] == r["client_status"] == 200
        assert r["error"] is None

    # the log file holds the same records, one JSON line each, flushed as they happen
    lines = Path(proxy.log_path).read_text().splitlines()
    assert sorted((json.loads(x) for x in lines), key=lambda r: r["n"]) == recs


def test_authorization_is_forwarded(llama_server, fault_proxy):
    url = llama_server(api_key="sekrit")
    proxy = fault_proxy(url, rate=0.0)
    ok, _, body = request(proxy.port, body=chat_body(), headers={"Authorization": "Bearer sekrit"})
    assert ok == 200 and json.loads(body)["choices"]
    bad, _, _ = request(proxy.port, body=chat_body(), headers={"Authorization": "Bearer wrong"})
    none, _, _ = request(proxy.port, body=chat_body())
    assert (bad, none) == (401, 401)
    recs = wait_records(proxy, 3)
    assert [r["upstream_status"] for r in recs] == [200, 401, 401]
    assert [r["delivered"] for r in recs] == [True, True, True]  # relayed faithfully, 401 included


def test_concurrent_requests(smollm_server, fault_proxy):
    proxy = fault_proxy(smollm_server, rate=0.0)
    results = []

    def one():
        results.append(request(proxy.port, "GET", "/v1/models")[0])

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [200] * 8
    recs = wait_records(proxy, 8)
    assert sorted(r["n"] for r in recs) == list(range(1, 9))
    assert all(r["delivered"] for r in recs)


def test_fault_429(smollm_server, fault_proxy):
    proxy = fault_proxy(smollm_server, rate=1.0, faults=["429"], retry_after=3)
    status, hdrs, body = request(proxy.port, body=chat_body())
    assert status == 429
    assert hdrs["retry-after"] == "3"
    assert json.loads(body)["error"]["type"] == "rate_limit_error"
    (rec,) = wait_records(proxy, 1)
    assert rec["fault"] == "429" and rec["client_status"] == 429
    assert not rec["forwarded"] and rec["upstream_status"] is None and not rec["delivered"]


def test_fault_500(smollm_server, fault_proxy):
    proxy = fault_proxy(smollm_server, rate=1.0, faults="500")
    status, _, body = request(proxy.port, body=chat_body())
    assert status == 500
    assert json.loads(body)["error"]["type"] == "server_error"
    (rec,) = wait_records(proxy, 1)
    assert rec["fault"] == "500" and rec["client_status"] == 500
    assert not rec["forwarded"] and rec["upstream_status"] is None and not rec["delivered"]


def test_fault_drop(smollm_server, fault_proxy):
    proxy = fault_proxy(smollm_server, rate=1.0, faults="drop")
    with pytest.raises(http.client.RemoteDisconnected):  # closed without a status line
        request(proxy.port, body=chat_body())
    (rec,) = wait_records(proxy, 1)
    assert rec["fault"] == "drop" and rec["client_status"] is None
    assert not rec["forwarded"] and rec["upstream_status"] is None and not rec["delivered"]


def test_fault_truncate(smollm_server, fault_proxy):
    proxy = fault_proxy(smollm_server, rate=1.0, faults="truncate")
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
    try:
        conn.request("POST", "/v1/chat/completions", body=chat_body(),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200
        length = int(r.getheader("Content-Length"))
        with pytest.raises(http.client.IncompleteRead) as e:
            r.read()
        assert len(e.value.partial) == length // 2 and e.value.expected == length - length // 2
    finally:
        conn.close()
    (rec,) = wait_records(proxy, 1)
    assert rec["fault"] == "truncate" and rec["forwarded"] and rec["upstream_status"] == 200
    assert not rec["delivered"]


def test_fault_badjson(smollm_server, fault_proxy):
    proxy = fault_proxy(smollm_server, rate=1.0, faults="badjson")
    status, hdrs, body = request(proxy.port, body=chat_body())
    assert status == 200
    assert hdrs["content-type"] == "application/json"
    assert int(hdrs["content-length"]) == len(body)
    assert body == BAD_JSON
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    (rec,) = wait_records(proxy, 1)
    assert rec["fault"] == "badjson" and rec["forwarded"] and rec["upstream_status"] == 200
    assert not rec["delivered"]


def test_fault_delay_client_gives_up(smollm_server, fault_proxy):
    proxy = fault_proxy(smollm_server, rate=1.0, faults="delay", delay_s=600)
    with pytest.raises(TimeoutError):
        request(proxy.port, body=chat_body(), timeout=2)
    # Written as soon as the proxy sees the client hang up, not when the 600 s are over.
    (rec,) = wait_records(proxy, 1, timeout=30)
    assert rec["fault"] == "delay"
    assert not rec["forwarded"] and rec["upstream_status"] is None
    assert rec["client_status"] is None and not rec["delivered"]


def test_fault_delay_client_waits(smollm_server, fault_proxy):
    proxy = fault_proxy(smollm_server, rate=1.0, faults="delay", delay_s=1)
    status, _, body = request(proxy.port, body=chat_body(), timeout=60)
    assert status == 200 and json.loads(body)["choices"]
    (rec,) = wait_records(proxy, 1)
    assert rec["fault"] == "delay" and rec["forwarded"] and rec["delivered"]
    assert rec["upstream_status"] == rec["client_status"] == 200


def outcome(port):
    """What a client sees for GET /v1/models: a status code, or 'closed'."""
    try:
        return request(port, "GET", "/v1/models", timeout=30)[0]
    except http.client.RemoteDisconnected:
        return "closed"


SEEN = {None: 200, "429": 429, "500": 500, "drop": "closed"}


def test_seeded_sequence_is_reproducible(smollm_server, fault_proxy):
    faults = ("429", "500", "drop")
    expected = [fault_for(42, n, 0.5, faults) for n in range(1, 25)]
    assert len(set(expected)) == 4  # the seed exercises every outcome, faults and none
    assert expected != [fault_for(43, n, 0.5, faults) for n in range(1, 25)]

    runs = []
    for _ in range(2):
        proxy = fault_proxy(smollm_server, seed=42, rate=0.5, faults=faults)
        runs.append([outcome(proxy.port) for _ in expected])
        recs = wait_records(proxy, len(expected))
        assert [r["fault"] for r in recs] == expected
    assert runs[0] == runs[1] == [SEEN[f] for f in expected]


def test_cli(smollm_server, tmp_path):
    """The script on its own: port file, log flushed per line while it runs, same sequence."""
    faults = ("429", "500", "drop")
    upstream = smollm_server[: -len("/v1")]
    port_file, log = tmp_path / "proxy.port", tmp_path / "proxy.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(PROXY_SCRIPT), "--upstream", upstream, "--listen", "127.0.0.1:0",
         "--port-file", str(port_file), "--log", str(log), "--seed", "42", "--rate", "0.5",
         "--faults", ",".join(faults), "--retry-after", "2"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no port file"
            time.sleep(0.05)
        port = int(port_file.read_text())
        expected = [fault_for(42, n, 0.5, faults) for n in range(1, 11)]
        assert [outcome(port) for _ in expected] == [SEEN[f] for f in expected]
        deadline = time.monotonic() + 30
        while len(log.read_text().splitlines()) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.05)
        recs = sorted((json.loads(x) for x in log.read_text().splitlines()), key=lambda r: r["n"])
        assert [r["fault"] for r in recs] == expected
        assert proc.poll() is None  # read while it is still running
    finally:
        proc.terminate()
        proc.wait(15)
    assert proc.returncode == 0


def test_cli_rejects_unknown_fault(tmp_path):
    proc = subprocess.run([sys.executable, str(PROXY_SCRIPT), "--upstream", "http://127.0.0.1:9",
                           "--faults", "429,nope"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "nope" in proc.stderr
    assert set(ALL_FAULTS) == {"delay", "429", "500", "drop", "truncate", "badjson"}


def test_upstream_down_is_502(fault_proxy):
    proxy = fault_proxy(f"http://127.0.0.1:{free_port()}", rate=0.0)  # nothing listens there
    status, _, body = request(proxy.port, body=chat_body(), timeout=30)
    assert status == 502 and "upstream" in json.loads(body)["error"]["message"]
    (rec,) = wait_records(proxy, 1)
    assert rec["fault"] is None and not rec["forwarded"] and not rec["delivered"]
    assert rec["client_status"] == 502 and rec["error"].startswith("upstream:")
