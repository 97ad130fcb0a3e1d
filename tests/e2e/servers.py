"""Servers for the end-to-end tests: a real OpenAI-compatible server on loopback, and a
canned one that answers at once.

    from e2e.servers import CannedServer, LlamaServer, llama_server

    with llama_server(model_path) as url:          # "http://127.0.0.1:PORT/v1"
        ...
    with LlamaServer(model_path, api_key="k") as srv:
        srv.url, srv.port, srv.log_path, srv.log_tail()
    with CannedServer() as srv:                    # srv.url, srv.root_url, srv.requests()
        ...

The real server is llama-cpp-python's (`python -m llama_cpp.server`, from the project venv),
one thread, greedy when asked for temperature 0. Its output goes to a log file whose tail is
shown when it fails to start. Nothing here skips: a server that does not come up fails the
test. How long the real server takes to answer depends on the machine and on what else it
is computing, so a test whose outcome hangs on a timeout uses the canned server instead: its
answers take milliseconds, thousands of times less than a client timeout of seconds.
LoopbackJsonServer is the base of the fake endpoints (the canned server, the scripted expert
of e2e/scripted_expert.py): they differ only in how they answer a POST.
The pytest fixtures built on these live in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


class ServerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now (the server binds it a moment later; a clash is unlikely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"(no log: {e})"
    return data[-n:].decode("utf-8", "replace")


def _server_env() -> dict:
    # llama_cpp.server reads its settings from the environment too (pydantic BaseSettings:
    # MODEL, PORT, HOST, API_KEY, SEED, CACHE, ...): give it a clean one so a stray variable
    # cannot change what the command line says.
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "LD_LIBRARY_PATH")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class LlamaServer:
    """`python -m llama_cpp.server` on 127.0.0.1:<free port>; start()/stop() or `with`."""

    def __init__(
        self,
        model_path,
        api_key: str | None = None,
        n_ctx: int = 2048,
        threads: int = 1,
        *,
        model_alias: str | None = None,
        log_path=None,
        python=None,
        extra_args=(),
        startup_timeout: float = 120.0,
    ):
        self.model_path = Path(os.path.abspath(model_path))  # the server runs in the log folder
        self.api_key = api_key
        self.n_ctx = int(n_ctx)
        self.threads = int(threads)
        self.model_alias = model_alias
        self.python = Path(python) if python else (VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))
        self.extra_args = [str(a) for a in extra_args]
        self.startup_timeout = float(startup_timeout)
        self._tmpdir = None
        if log_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="meteor-llama-server-")
            log_path = Path(self._tmpdir.name) / "server.log"
        self.log_path = Path(log_path)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Base URL of the OpenAI API: http://127.0.0.1:PORT/v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT (for a proxy's --upstream)."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            str(self.python), "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_threads", str(self.threads),
            "--n_threads_batch", str(self.threads),
            "--n_ctx", str(self.n_ctx),
        ]
        if self.api_key is not None:
            cmd += ["--api_key", self.api_key]
        if self.model_alias is not None:
            cmd += ["--model_alias", self.model_alias]
        return cmd + self.extra_args

    def log_tail(self, n: int = 4000) -> str:
        return _tail(self.log_path, n)

    def start(self) -> "LlamaServer":
        if not self.model_path.is_file():
            raise ServerError(f"model {self.model_path} is missing: run `bash scripts/setup.sh models`")
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=_server_env(), cwd=self.log_path.parent, start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + self.startup_timeout
        req = urllib.request.Request(self.url + "/models")
        if self.api_key is not None:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise ServerError(
                    f"llama server exited {rc} while starting: {' '.join(self.command())}\n"
                    f"--- {self.log_path} (tail) ---\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    if r.status == 200 and json.load(r).get("data"):
                        return
            except (OSError, ValueError) as e:  # URLError, refused, reset, bad JSON: not ready
                last = e
            if time.monotonic() > deadline:
                raise ServerError(
                    f"llama server not answering GET {self.url}/models after {self.startup_timeout:.0f}s "
                    f"(last: {last!r})\n--- {self.log_path} (tail) ---\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self):
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(15)

    def close(self):
        """stop() and remove the temporary log folder, if one was made."""
        self.stop()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def llama_server(model_path, api_key=None, n_ctx=2048, threads=1, **kw):
    """Start a llama server, yield its base URL "http://127.0.0.1:PORT/v1", stop it at the end."""
    with LlamaServer(model_path, api_key=api_key, n_ctx=n_ctx, threads=threads, **kw) as srv:
        yield srv.url


def chat_request(url: str, content: str, *, max_tokens: int = 4, api_key: str | None = None,
                 timeout: float = 60.0, **extra):
    """POST {url}/chat/completions (temperature 0) -> (status, headers, parsed JSON body)."""
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "temperature": 0, **extra}
    req = urllib.request.Request(url.rstrip("/") + "/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    if api_key is not None:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), json.load(r)
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), json.loads(e.read() or b"null")


class _JsonHandler(http.server.BaseHTTPRequestHandler):
    """GET /v1/models names the server's one model; every POST body goes to the server's
    owner, answer(path, body) -> (status, JSON payload). One request per connection."""

    protocol_version = "HTTP/1.1"
    server: "_LoopbackHTTPServer"

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def _reply(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:  # the client hung up (a proxy's drop or delay fault): nobody to tell
            pass
        self.close_connection = True

    def do_GET(self):
        if self.path.rstrip("/") != "/v1/models":
            return self._reply(404, {"error": {"message": f"no route {self.path}"}})
        self._reply(200, {"object": "list", "data": [{"id": self.server.owner.model_id, "object": "model"}]})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._reply(*self.server.owner.answer(self.path, body))


class _LoopbackHTTPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    # TCPServer, not HTTPServer: HTTPServer.server_bind looks up the host's FQDN (DNS).
    daemon_threads = True
    allow_reuse_address = True
    owner: "LoopbackJsonServer"


class LoopbackJsonServer:
    """Base of the fake OpenAI-compatible endpoints (CannedServer here, the scripted expert
    of e2e/scripted_expert.py): HTTP on 127.0.0.1:<free port>, a thread per request, GET
    /v1/models answered here, every POST by the subclass's answer(path, body) -> (status,
    JSON payload). start()/stop() or `with`."""

    model_id = "loopback"

    def __init__(self):
        self._httpd = _LoopbackHTTPServer(("127.0.0.1", 0), _JsonHandler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    def answer(self, path: str, body: bytes) -> tuple[int, dict]:
        raise NotImplementedError

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def canned_completion(user: str) -> dict:
    """The canned server's answer to a user message: fixed text naming the message's hash."""
    digest = hashlib.sha256(user.encode()).hexdigest()[:12]
    text = f"A canned expert answer ({digest}): read the question, then the documentation."
    return {
        "id": f"chatcmpl-canned-{digest}",
        "object": "chat.completion",
        "created": 0,
        "model": "canned",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": len(user.split()), "completion_tokens": len(text.split()),
                  "total_tokens": len(user.split()) + len(text.split())},
    }


class CannedServer(LoopbackJsonServer):
    """An OpenAI-compatible endpoint on 127.0.0.1:<free port> that answers every chat
    completion at once with canned_completion(last user message). start()/stop() or `with`."""

    model_id = "canned"

    def __init__(self):
        self._lock = threading.Lock()
        self._requests: list[tuple[str, bytes]] = []
        super().__init__()

    def answer(self, path: str, body: bytes) -> tuple[int, dict]:
        self.count(path, body)
        if path.rstrip("/") != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}
        try:
            req = json.loads(body)
            user = next(m["content"] for m in reversed(req["messages"]) if m["role"] == "user")
        except (ValueError, KeyError, TypeError, StopIteration):
            return 400, {"error": {"message": "not a chat completion request"}}
        return 200, canned_completion(user)

    def count(self, path: str, body: bytes):
        with self._lock:
            self._requests.append((path, body))

    def requests(self) -> list[tuple[str, bytes]]:
        """(path, body) of every POST received so far."""
        with self._lock:
            return list(self._requests)
