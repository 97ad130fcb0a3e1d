"""transformers' model and tokenizer of a GGUF file, built once and kept on disk.

transformers builds a model of a GGUF file by dequantising every tensor in Python, and a
tokenizer by converting the GGUF vocabulary; for Gemma 3 that takes a minute or two, and
several test files need the same ones. What transformers built is pickled (torch.save for
the model) into ${METEOR_CACHE:-~/.cache/meteor}, outside the clone as scripts/setup.sh does
with the venv and the models, under names keyed by what it was built from: the GGUF file's
SHA-256 and the versions of the packages that build and pickle it. A later session loads
the very same objects (weights, config, tokenizer state, attributes) in about a second.

    from hf_cache import hf_model, hf_tokenizer
    model = hf_model(gguf)        # fp32, eval mode
    tok = hf_tokenizer(gguf)      # a new object on every call

A pickle is not save_pretrained on purpose: reloading a saved folder does not give back
the same tokenizer (Qwen2's class adds an NFC normalizer its GGUF conversion does not
have; Gemma's add_bos_token comes back False), and transformers refuses to save a model
loaded from a GGUF. Each file is written under a temporary name and renamed when
complete, so an interrupted or concurrent build never leaves a partial file in its place.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pickle
from pathlib import Path

# Bump when what goes into a file changes, so old files are not read.
LAYOUT = "1"
BUILDERS = ("transformers", "tokenizers", "torch", "gguf")


def cache_root() -> Path:
    return Path(os.environ.get("METEOR_CACHE") or Path.home() / ".cache" / "meteor")


def _write_atomically(path: Path, write):
    """write(file object) fills a temporary file that becomes `path` once it returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def gguf_sha256(gguf: Path) -> str:
    """The file's SHA-256, remembered in the cache under its path, size and mtime so a
    session does not read the whole file again (a changed file gets a new entry)."""
    gguf = Path(gguf).resolve()
    st = gguf.stat()
    stat_key = hashlib.sha256(f"{gguf}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    memo = cache_root() / "hf-sha256" / stat_key
    try:
        digest = memo.read_text().strip()
        if len(digest) == 64:
            return digest
    except OSError:
        pass
    h = hashlib.sha256()
    with open(gguf, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    digest = h.hexdigest()
    _write_atomically(memo, lambda f: f.write(f"{digest}\n".encode()))
    return digest


def _cached(kind: str, suffix: str, gguf: Path, build, dump, load):
    """load(path) of the file for (kind, gguf); made first with dump(build(), file) if missing."""
    versions = "|".join(f"{p}=={importlib.metadata.version(p)}" for p in BUILDERS)
    key = hashlib.sha256(f"{LAYOUT}|{kind}|{gguf_sha256(gguf)}|{versions}".encode()).hexdigest()[:16]
    path = cache_root() / f"hf-{kind}-{key}{suffix}"
    if not path.is_file():
        obj = build()
        _write_atomically(path, lambda f: dump(obj, f))
    return load(path)


def hf_model(gguf: Path):
    """transformers' fp32 model of a GGUF file, in eval mode."""
    import torch
    import transformers

    gguf = Path(gguf)
    return _cached(
        "model", ".pt", gguf,
        build=lambda: transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32),
        dump=torch.save,
        # our own file, written above: a whole pickled module, not weights alone
        load=lambda path: torch.load(path, weights_only=False),
    ).eval()


def hf_tokenizer(gguf: Path):
    """transformers' tokenizer of a GGUF file; a new object on every call, so a test may
    change it (test_tokenizer_parity.py replaces SmolLM2's pre-tokenizer)."""
    import transformers

    gguf = Path(gguf)

    def load(path):
        with open(path, "rb") as f:
            return pickle.load(f)

    return _cached(
        "tokenizer", ".pickle", gguf,
        build=lambda: transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name),
        dump=pickle.dump,
        load=load,
    )
