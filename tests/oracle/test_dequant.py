"""meteor's dequantisation against the reference `gguf` package, bit for bit.

For every type meteor reads, `build/tools/dump_tensor` writes a tensor as raw float32
and the result must equal `gguf.quants.dequantize` exactly (compared as uint32 bit
patterns, so -0.0, NaN payloads and rounding all count). Real tensors come from the
two real models; types they lack are written to a GGUF here, from real weights
re-quantised by the gguf package where it can quantise that type, else from random
valid blocks with a fixed seed.

Self-contained on purpose (no conftest fixtures): paths come from METEOR_BUILD
(default <repo>/build) and METEOR_MODELS (default <repo>/models, then /tmp/models).
A missing binary or model fails the test rather than skipping it.
"""

import functools
import os
import subprocess
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

REPO = Path(__file__).resolve().parents[2]
SMOLLM = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = "gemma-3-270m-q4_k_m.gguf"
MAX_ELEMENTS = 3_000_000  # whole tensors up to this size; bigger ones by row ranges


def build_dir() -> Path:
    return Path(os.environ.get("METEOR_BUILD", REPO / "build"))


def dump_tool() -> Path:
    exe = build_dir() / "tools" / "dump_tensor"
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        pytest.fail(f"{exe} is missing: build it with `make`", pytrace=False)
    return exe


def model_path(name: str) -> Path:
    env = os.environ.get("METEOR_MODELS")
    candidates = [Path(env)] if env else [REPO / "models", Path("/tmp/models")]
    for d in candidates:
        if (d / name).is_file():
            return d / name
    pytest.fail(f"model {name} not found in {', '.join(map(str, candidates))}", pytrace=False)


@functools.lru_cache(maxsize=None)
def open_reader(path: Path):
    """GGUFReader parses the whole vocabulary, which takes seconds: once per file."""
    return gguf.GGUFReader(path)


def dump(path: Path, name: str, out: Path, rows: tuple[int, int] | None = None) -> np.ndarray:
    cmd = [str(dump_tool()), str(path), name, str(out)]
    if rows:
        cmd += [str(rows[0]), str(rows[1])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed: {proc.stderr}"
    return np.fromfile(out, dtype="<f4")


def reference(data: np.ndarray, qtype: Q) -> np.ndarray:
    return np.asarray(gguf.quants.dequantize(data, qtype), dtype=np.float32).reshape(-1)


def assert_bits_equal(mine: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert mine.size == ref.size, f"{what}: {mine.size} values, reference has {ref.size}"
    a, b = mine.view(np.uint32), ref.view(np.uint32)
    if not np.array_equal(a, b):
        i = int(np.flatnonzero(a != b)[0])
        pytest.fail(
            f"{what}: {int(np.count_nonzero(a != b))} of {a.size} values differ; first at {i}: "
            f"meteor {mine[i]!r} ({a[i]:#010x}) vs gguf {ref[i]!r} ({b[i]:#010x})",
            pytrace=False,
        )


def rows_of(t) -> np.ndarray:
    """The tensor's bytes as (rows, bytes per row), whatever dtype the reader chose."""
    raw = np.ascontiguousarray(t.data).view(np.uint8)
    return raw.reshape(int(np.prod(t.shape[1:], dtype=np.int64)), -1)


# ---- (a) real tensors from the real models ----

def pick_real(model: str, qtype: Q, count: int = 3):
    """Small tensors of one type: first, middle and last in file order."""
    reader = open_reader(model_path(model))
    small = [t for t in reader.tensors if t.tensor_type == qtype and t.n_elements <= MAX_ELEMENTS]
    assert small, f"{model} has no {qtype.name} tensor of at most {MAX_ELEMENTS} elements"
    idx = sorted({0, len(small) // 2, len(small) - 1})[:count]
    return reader, [small[i] for i in idx]


REAL_CASES = [
    (SMOLLM, Q.Q4_1),
    (SMOLLM, Q.F32),
    (GEMMA, Q.Q5_0),
    (GEMMA, Q.Q4_K),
    (GEMMA, Q.Q6_K),
    (GEMMA, Q.Q8_0),
    (GEMMA, Q.F32),
]


@pytest.mark.parametrize("model,qtype", REAL_CASES, ids=lambda v: getattr(v, "name", str(v)))
def test_real_tensors(model, qtype, tmp_path):
    _, tensors = pick_real(model, qtype)
    for t in tensors:
        mine = dump(model_path(model), t.name, tmp_path / "out.f32")
        assert_bits_equal(mine, reference(t.data, qtype), f"{model}:{t.name} ({qtype.name})")


@pytest.mark.parametrize("model", [SMOLLM, GEMMA])
def test_embedding_row_ranges(model, tmp_path):
    """The Q8_0 token embeddings are large; compare their first and last 512 rows."""
    reader = open_reader(model_path(model))
    t = next(t for t in reader.tensors if t.name == "token_embd.weight")
    assert t.tensor_type == Q.Q8_0
    rows = rows_of(t)
    for start in (0, rows.shape[0] - 512):
        mine = dump(model_path(model), t.name, tmp_path / "out.f32", (start, 512))
        ref = reference(rows[start : start + 512], Q.Q8_0)
        assert_bits_equal(mine, ref, f"{model}:{t.name} rows {start}..{start + 511}")


# ---- (b) types the real models lack, in a GGUF written here ----

def real_weights() -> np.ndarray:
    """SmolLM2's blk.0.ffn_down (1536 x 576), dequantised to float32."""
    reader = open_reader(model_path(SMOLLM))
    t = next(t for t in reader.tensors if t.name == "blk.0.ffn_down.weight")
    return reference(t.data, t.tensor_type).reshape(int(t.shape[1]), int(t.shape[0]))


def edge_values() -> np.ndarray:
    """Values that probe half/bfloat conversion: subnormals, limits, signed zeros,
    infinities and NaN, 64 per row."""
    v = np.array(
        [0.0, -0.0, 1.0, -1.0, 65504.0, -65504.0, 6.1035156e-05, 5.9604645e-08,
         3e-08, 1e-45, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan, 1.0009766],
        dtype=np.float32,
    )
    return np.tile(v, 8).reshape(2, 64)


def random_blocks(qtype: Q, n_blocks: int, rng: np.random.Generator) -> np.ndarray:
    """Random block bytes with every f16 scale field replaced by a finite value."""
    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    scale_fields = {Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [block_bytes - 2],
                    Q.Q5_1: [0, 2], Q.Q4_0: [0]}[qtype]
    for off in scale_fields:
        scales = (rng.standard_normal(n_blocks) * 0.02).astype(np.float16)
        b[:, off : off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return b


SYNTH_TYPES = [Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q4_K, Q.Q5_K, Q.Q6_K]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A GGUF with, per type, a re-quantised real weight (where gguf can quantise) and
    random valid blocks (K-quants, plus Q4_0/Q5_1 for extra coverage)."""
    rng = np.random.default_rng(20241118)
    w = real_weights()
    path = tmp_path_factory.mktemp("dequant") / "synthetic.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    expected = {}

    def add(name, data, qtype):
        if data.dtype == np.uint8:
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
        else:
            writer.add_tensor(name, data)
        expected[name] = (data, qtype)

    add("f16.real", w.astype(np.float16), Q.F16)
    with np.errstate(over="ignore"):  # +-3.4e38 become infinities on purpose
        add("f16.edge", edge_values().astype(np.float16), Q.F16)
    for qtype in (Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0):
        add(f"{qtype.name.lower()}.real", gguf.quants.quantize(w, qtype), qtype)
    add("bf16.edge", gguf.quants.quantize(edge_values(), Q.BF16), Q.BF16)
    for qtype in (Q.Q4_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K):
        block_elems, _ = gguf.GGML_QUANT_SIZES[qtype]
        per_row = 1024 // block_elems
        blocks = random_blocks(qtype, 48 * per_row, rng)
        add(f"{qtype.name.lower()}.random", blocks.reshape(48, -1), qtype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, expected


def test_synthetic_file_lists_every_tensor(synthetic):
    path, expected = synthetic
    proc = subprocess.run([str(dump_tool()), "--list", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()}
    reader = gguf.GGUFReader(path)
    assert set(listed) == set(expected)
    for t in reader.tensors:
        assert listed[t.name] == [t.tensor_type.name, *map(str, map(int, t.shape))]


@pytest.mark.parametrize("qtype", SYNTH_TYPES, ids=lambda q: q.name)
def test_synthetic(qtype, synthetic, tmp_path):
    path, expected = synthetic
    reader = gguf.GGUFReader(path)
    names = [n for n, (_, q) in expected.items() if q == qtype]
    assert names, f"no synthetic tensor of type {qtype.name}"
    for name in names:
        t = next(t for t in reader.tensors if t.name == name)
        assert t.tensor_type == qtype
        mine = dump(path, name, tmp_path / "out.f32")
        assert_bits_equal(mine, reference(t.data, qtype), f"synthetic {name}")


def test_real_listing_matches_reader(tmp_path):
    for model in (SMOLLM, GEMMA):
        proc = subprocess.run([str(dump_tool()), "--list", str(model_path(model))],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        reader = open_reader(model_path(model))
        want = [" ".join([t.name, t.tensor_type.name, *map(str, map(int, t.shape))])
                for t in reader.tensors]
        assert proc.stdout.splitlines() == want
