"""Shared fixtures for meteor's Python tests (CPU): tests/oracle and tests/e2e.

Oracle tests compare meteor's C engine with reference implementations
(PyTorch, transformers, tokenizers, gguf, llama-cpp-python) on the same weights.
End-to-end tests run meteor against a real OpenAI-compatible server on loopback
(llama-cpp-python's), with a fault-injection proxy between them (tests/e2e).
Nothing here skips: a missing binary, model or server is a failure, because a test
that silently does not run proves nothing. Run `bash scripts/setup.sh` first.

The e2e fixtures live here rather than in tests/e2e/conftest.py: test modules do
`from conftest import REPO_ROOT, ...`, and a second conftest module would take that
name when both folders are collected in one run.
"""

import os
import subprocess
from pathlib import Path

import pytest

from e2e.fault_proxy import FaultProxy
from e2e.servers import CannedServer, LlamaServer, ServerError
from hf_cache import hf_model, hf_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]

SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def build_dir(repo_root) -> Path:
    return Path(os.environ.get("METEOR_BUILD", repo_root / "build"))


@pytest.fixture(scope="session")
def meteor_bin(build_dir) -> Path:
    exe = build_dir / "meteor"
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        pytest.fail(f"{exe} is missing: build it with `make` (or bash scripts/setup.sh)", pytrace=False)
    return exe


@pytest.fixture(scope="session")
def meteor_asan_bin(repo_root) -> Path:
    """build-asan/meteor: meteor under AddressSanitizer + UndefinedBehaviorSanitizer
    (`make asan-bin`; scripts/test.sh builds it before the Python stages). Any sanitizer
    report aborts the process with a non-zero exit (-fno-sanitize-recover)."""
    exe = Path(os.environ.get("METEOR_ASAN_BUILD", repo_root / "build-asan")) / "meteor"
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        pytest.fail(f"{exe} is missing: build it with `make asan-bin`", pytrace=False)
    return exe


@pytest.fixture(scope="session")
def models_dir(repo_root) -> Path:
    d = Path(os.environ.get("METEOR_MODELS", repo_root / "models"))
    missing = [f for f in (SMOLLM_FILE, GEMMA_FILE) if not (d / f).is_file()]
    if missing:
        pytest.fail(
            f"model file(s) {', '.join(missing)} missing in {d}: run `bash scripts/setup.sh models`",
            pytrace=False,
        )
    return d


@pytest.fixture(scope="session")
def smollm_gguf(models_dir) -> Path:
    """SmolLM2-135M-Instruct, GGUF Q4_1 (llama architecture, byte-level BPE)."""
    return models_dir / SMOLLM_FILE


@pytest.fixture(scope="session")
def gemma_gguf(models_dir) -> Path:
    """Gemma 3 270M, GGUF Q4_K_M (gemma3 architecture, SentencePiece-style vocab)."""
    return models_dir / GEMMA_FILE


@pytest.fixture(scope="session")
def hf_gguf():
    """load(gguf) -> (model, tokenizer): transformers' fp32 model of a GGUF file (eval mode) and
    its tokenizer, loaded once per session. Converting a GGUF in Python takes up to minutes, so
    the conversions are also kept on disk (tests/hf_cache.py), and several test files compare
    against the same models; tests must not change them (copy first, as the PEFT tests do)."""
    cache = {}

    def load(gguf: Path):
        key = str(gguf)
        if key not in cache:
            cache[key] = (hf_model(gguf), hf_tokenizer(gguf))
        return cache[key]

    return load


@pytest.fixture(scope="session")
def run_meteor(meteor_bin, repo_root):
    """run_meteor(*args, check=True, timeout=600, input=None) -> CompletedProcess (text).

    With check=True a non-zero exit fails the test and shows the command and stderr.
    """

    def run(*args, check=True, timeout=600, input=None, env=None):
        cmd = [str(meteor_bin), *map(str, args)]
        proc = subprocess.run(
            cmd,
            cwd=repo_root,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"`{' '.join(cmd)}` exited {proc.returncode}\n--- stderr ---\n{proc.stderr[-4000:]}",
                pytrace=False,
            )
        return proc

    return run


# ---------------------------------------------------------------------------
# End-to-end: a real OpenAI-compatible server, and the fault proxy in front of it.


@pytest.fixture(scope="session")
def llama_server(smollm_gguf, tmp_path_factory):
    """llama_server(model_path=None, api_key=None, n_ctx=2048, threads=1) -> base URL.

    Starts `python -m llama_cpp.server` (SmolLM2 by default) on 127.0.0.1:<free port> and
    returns "http://127.0.0.1:PORT/v1" once GET /v1/models answers. Servers are shared for
    the session (one per distinct argument set) and stopped when it ends; the LlamaServer
    object of a URL is in llama_server.servers[url] (log_path, log_tail(), root_url).
    """
    servers = {}
    by_args = {}
    logs = tmp_path_factory.mktemp("llama-server")

    def start(model_path=None, api_key=None, n_ctx=2048, threads=1):
        model_path = Path(model_path or smollm_gguf)
        key = (str(model_path), api_key, int(n_ctx), int(threads))
        if key not in by_args:
            srv = LlamaServer(model_path, api_key=api_key, n_ctx=n_ctx, threads=threads,
                              log_path=logs / f"server-{len(by_args)}.log")
            try:
                srv.start()
            except ServerError as e:
                pytest.fail(str(e), pytrace=False)
            by_args[key] = srv
            servers[srv.url] = srv
        return by_args[key].url

    start.servers = servers
    try:
        yield start
    finally:
        for srv in by_args.values():
            srv.stop()


@pytest.fixture(scope="session")
def smollm_server(llama_server) -> str:
    """Base URL ("http://127.0.0.1:PORT/v1") of a session-wide SmolLM2 server, no API key."""
    return llama_server()


@pytest.fixture
def canned_server():
    """An e2e.servers.CannedServer for one test: an OpenAI-compatible endpoint on loopback
    whose answers are canned and immediate (.url is its base URL, .requests() what it got).
    For tests whose outcome must not hang on how fast a real model answers."""
    with CannedServer() as srv:
        yield srv


@pytest.fixture
def fault_proxy(tmp_path):
    """fault_proxy(upstream, *, seed=0, rate=0.0, faults=ALL, delay_s=5, retry_after=1,
    log_path=tmp_path/"proxy-N.jsonl") -> a started e2e.fault_proxy.FaultProxy, stopped after
    the test. upstream may be a server's base URL ("http://127.0.0.1:PORT/v1"): the proxy then
    serves the same paths, so meteor's base URL is proxy.url + "/v1".
    """
    proxies = []

    def start(upstream, **kw):
        upstream = str(upstream).rstrip("/")
        if upstream.endswith("/v1"):
            upstream = upstream[: -len("/v1")]
        kw.setdefault("log_path", tmp_path / f"proxy-{len(proxies)}.jsonl")
        proxy = FaultProxy(upstream, **kw).start()
        proxies.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for p in proxies:
            p.stop()
