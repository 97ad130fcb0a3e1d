"""Shared fixtures for meteor's oracle tests (Python, CPU).

Oracle tests compare meteor's C engine with reference implementations
(PyTorch, transformers, tokenizers, gguf, llama-cpp-python) on the same weights.
Nothing here skips: a missing binary or model is a failure, because a test that
silently does not run proves nothing. Run `bash scripts/setup.sh` first.
"""

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

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
