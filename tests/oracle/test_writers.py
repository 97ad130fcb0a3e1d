"""meteor's file writers and quantisation against the reference Python packages.

- The `gguf` package's GGUFReader reads a GGUF written by meteor: every metadata value with
  its type, every tensor's name, type, shape, offset alignment and bytes.
- The `safetensors` package reads meteor's safetensors file, metadata included.
- meteor's quantisation (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) equals
  `gguf.quants.quantize` byte for byte, on real SmolLM2 weights and on seeded random data
  with hand-made edge blocks.

The files come from build/tools/write_test_files (tests/tools/write_test_files.c).
"""

import json
import os
import struct
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType as VT
from gguf.quants import dequantize, quantize
from safetensors import safe_open

QUANT_TYPES = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]


@pytest.fixture(scope="session")
def tool(build_dir) -> Path:
    exe = build_dir / "tools" / "write_test_files"
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        pytest.fail(f"{exe} is missing: build it with `make`", pytrace=False)
    return exe


def run_tool(tool, *args):
    proc = subprocess.run([str(tool), *map(str, args)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"write_test_files {' '.join(map(str, args))} failed:\n{proc.stderr}", pytrace=False)


def lcg_values(seed: int, n: int) -> np.ndarray:
    """write_test_files.c's test_values(): ((x >> 8) - 2^23) * 2^-23, exact in float32."""
    out = np.empty(n, dtype=np.float32)
    x = seed
    for i in range(n):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = ((x >> 8) - (1 << 23)) * 2.0**-23
    return out


def reference_bytes(values: np.ndarray, qtype: QT) -> bytes:
    if qtype == QT.F32:
        return values.astype(np.float32).tobytes()
    return quantize(values, qtype).tobytes()


# ---------------------------------------------------------------- GGUF

GGUF_SCALARS = {
    "general.architecture": (VT.STRING, "llama"),
    "general.name": (VT.STRING, "meteor writer test v2"),
    "test.u8": (VT.UINT8, 200),
    "test.i8": (VT.INT8, -100),
    "test.u16": (VT.UINT16, 60000),
    "test.i16": (VT.INT16, -30000),
    "test.u32": (VT.UINT32, 4000000000),
    "test.i32": (VT.INT32, -2000000000),
    "test.u64": (VT.UINT64, 2**64 - 1),
    "test.i64": (VT.INT64, -(2**63)),
    "test.f32": (VT.FLOAT32, float(np.float32(0.1))),
    "test.f64": (VT.FLOAT64, 0.1),
    "test.true": (VT.BOOL, True),
    "test.false": (VT.BOOL, False),
    "test.str": (VT.STRING, "h\u00e9llo \u2713 \u4e16"),
    "test.empty": (VT.STRING, ""),
}

GGUF_ARRAYS = {
    "arr.u8": (VT.UINT8, [0, 1, 255]),
    "arr.i8": (VT.INT8, [-128, 0, 127]),
    "arr.u16": (VT.UINT16, [0, 65535]),
    "arr.i16": (VT.INT16, [-32768, 32767]),
    "arr.u32": (VT.UINT32, [0, 1, 2**32 - 1]),
    "arr.i32": (VT.INT32, [-1, 0, 2**31 - 1]),
    "arr.u64": (VT.UINT64, [0, 2**64 - 1]),
    "arr.i64": (VT.INT64, [-(2**63), -1, 2**63 - 1]),
    "arr.f32": (VT.FLOAT32, [1.5, -2.25, float(np.float32(1e30))]),
    "arr.f64": (VT.FLOAT64, [0.1, -1e300]),
    "arr.bool": (VT.BOOL, [True, False, True]),
    "arr.str": (VT.STRING, ["a", "", "\u00fc", "with space"]),
}

# name, type, ne (GGUF order), LCG seed: as in write_test_files.c
GGUF_TENSORS = [
    ("t.f32", QT.F32, [5, 3], 1),
    ("t.f16", QT.F16, [7], 2),
    ("t.bf16", QT.BF16, [3, 2, 2], 3),
    ("t.q8_0", QT.Q8_0, [64, 3], 4),
    ("t.q4_0", QT.Q4_0, [32, 2], 5),
    ("t.q4_1", QT.Q4_1, [32, 2, 1, 2], 6),
    ("t.q5_0", QT.Q5_0, [32, 3], 7),
    ("t.q5_1", QT.Q5_1, [64], 8),
]


@pytest.mark.parametrize("alignment", [None, 64, 1])
def test_gguf_reader_reads_meteor_gguf(tool, tmp_path, alignment):
    path = tmp_path / "w.gguf"
    run_tool(tool, "gguf", path, *([alignment] if alignment else []))
    r = GGUFReader(path)
    assert r.fields["GGUF.version"].contents() == 3
    expect_align = alignment or 32
    assert r.alignment == expect_align
    if alignment:
        f = r.fields["general.alignment"]
        assert f.types == [VT.UINT32] and f.contents() == alignment

    for key, (vt, value) in GGUF_SCALARS.items():
        f = r.fields[key]
        assert f.types == [vt], key
        assert f.contents() == value, key
    nul = r.fields["test.nul"]
    assert bytes(nul.parts[nul.data[0]]) == b"a\x00b"

    for key, (vt, values) in GGUF_ARRAYS.items():
        f = r.fields[key]
        assert f.types == [VT.ARRAY, vt], key
        assert f.contents() == values, key
    assert r.fields["arr.empty"].contents() == []

    # The replaced key kept its first position; every key appears once.
    keys = [k for k in r.fields if not k.startswith("GGUF.")]
    assert len(keys) == len(set(keys)) == r.fields["GGUF.kv_count"].contents()
    assert keys.index("general.name") < keys.index("test.u8")

    tensors = {t.name: t for t in r.tensors}
    assert [t.name for t in r.tensors] == [n for n, *_ in GGUF_TENSORS] + ["t.fill"]
    for name, qtype, ne, seed in GGUF_TENSORS:
        t = tensors[name]
        assert t.tensor_type == qtype, name
        assert list(map(int, t.shape)) == ne, name
        assert t.data_offset % expect_align == 0, name
        values = lcg_values(seed, int(np.prod(ne)))
        assert t.data.tobytes() == reference_bytes(values.reshape(ne[::-1]), qtype), name
    fill = tensors["t.fill"]
    assert fill.tensor_type == QT.F32
    np.testing.assert_array_equal(fill.data.reshape(-1), np.arange(16, dtype=np.float32) * 0.5)
    # The data section starts aligned; each tensor is padded to the alignment.
    assert os.path.getsize(path) % expect_align == 0


@pytest.mark.parametrize("model", ["smollm", "gemma"])
def test_gguf_copy_of_real_model_is_identical_to_reference_reader(tool, tmp_path, model, smollm_gguf, gemma_gguf):
    """mt_gguf_writer_copy_kv + verbatim tensors: the copy has every key with the same type
    and value (tokenizer vocabularies and merges included) and every tensor's bytes; with
    the same layout rules as llama.cpp's writer the whole file comes out byte-identical.
    Identical bytes imply every key and tensor read back equal, so the reference reader
    (about 20 s per read of Gemma's 262k-token vocabulary) runs only to name what differs."""
    src = smollm_gguf if model == "smollm" else gemma_gguf
    out = tmp_path / "copy.gguf"
    run_tool(tool, "copy", src, out)
    if out.read_bytes() == src.read_bytes():
        return
    a, b = GGUFReader(src), GGUFReader(out)
    assert list(a.fields) == list(b.fields)
    for key, fa in a.fields.items():
        fb = b.fields[key]
        assert fa.types == fb.types, key
        assert [bytes(fa.parts[i]) for i in fa.data] == [bytes(fb.parts[i]) for i in fb.data], key
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for ta, tb in zip(a.tensors, b.tensors):
        assert ta.tensor_type == tb.tensor_type and list(ta.shape) == list(tb.shape), ta.name
        assert ta.data.tobytes() == tb.data.tobytes(), ta.name
    assert out.read_bytes() == src.read_bytes()


# ---------------------------------------------------------------- safetensors

# name, dtype, shape (HF order), LCG seed: as in write_test_files.c
ST_TENSORS = [
    ("model.embed_tokens.weight", "F32", [3, 5], 100),
    ("a.f16", "F16", [7], 101),
    ("b.bf16", "BF16", [2, 3, 1], 102),
    ("scalar", "F32", [], 103),
    ("empty", "F32", [0, 3], 104),
    ("lora_A.weight", "F32", [4, 8], 105),
]
ST_META = {"format": "pt", "note": 'unicode \u2713 "quoted"\n\\'}


def st_expected(dtype: str, shape, seed: int) -> torch.Tensor:
    n = int(np.prod(shape)) if shape else 1
    v = lcg_values(seed, max(n, 1))[:n]
    if dtype == "F32":
        return torch.from_numpy(v.copy()).reshape(shape)
    if dtype == "F16":
        return torch.from_numpy(v.astype(np.float16)).reshape(shape)
    raw = np.frombuffer(quantize(v, QT.BF16).tobytes(), dtype=np.int16).copy()
    return torch.from_numpy(raw).view(torch.bfloat16).reshape(shape)


def test_safetensors_reads_meteor_file(tool, tmp_path):
    path = tmp_path / "w.safetensors"
    run_tool(tool, "safetensors", path)

    raw = path.read_bytes()
    (hlen,) = struct.unpack("<Q", raw[:8])
    assert (8 + hlen) % 8 == 0
    header_text = raw[8 : 8 + hlen].decode("utf-8")
    assert header_text.startswith("{") and header_text.rstrip(" ").endswith("}")
    header = json.loads(header_text)
    assert header["__metadata__"] == ST_META
    # Data section: contiguous, no gaps, covering the rest of the file exactly.
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    pos = 0
    for b, e in spans:
        assert b == pos
        pos = e
    assert pos == len(raw) - 8 - hlen

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == ST_META
        assert sorted(f.keys()) == sorted([n for n, *_ in ST_TENSORS] + ["fill"])
        for name, dtype, shape, seed in ST_TENSORS:
            got = f.get_tensor(name)
            want = st_expected(dtype, shape, seed)
            assert got.dtype == want.dtype and list(got.shape) == shape, name
            assert torch.equal(got, want), name
        assert torch.equal(f.get_tensor("fill"), (torch.arange(16, dtype=torch.float32) * 0.5).reshape(2, 8))

    with safe_open(str(path), framework="numpy") as f:
        for name, dtype, shape, seed in ST_TENSORS:
            if dtype == "BF16":
                continue  # numpy has no bfloat16
            np.testing.assert_array_equal(f.get_tensor(name), st_expected(dtype, shape, seed).numpy())


def test_safetensors_torch_load_file(tool, tmp_path):
    from safetensors.torch import load_file

    path = tmp_path / "w.safetensors"
    run_tool(tool, "safetensors", path)
    tensors = load_file(str(path))
    for name, dtype, shape, seed in ST_TENSORS:
        assert torch.equal(tensors[name], st_expected(dtype, shape, seed)), name


# ---------------------------------------------------------------- quantisation


def meteor_quantize(tool, tmp_path: Path, values: np.ndarray, qtype: str) -> bytes:
    src, dst = tmp_path / f"in_{qtype}.f32", tmp_path / f"out_{qtype}.bin"
    src.write_bytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    run_tool(tool, "quantize", qtype, src, dst)
    return dst.read_bytes()


def reference_quantize(values: np.ndarray, qtype: str) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 1/0 and NaN casts in edge blocks
        return quantize(values.astype(np.float32), QT[qtype]).tobytes()


def assert_same_bytes(got: bytes, want: bytes, qtype: str, what: str):
    assert len(got) == len(want), f"{what} {qtype}: {len(got)} bytes vs {len(want)}"
    if got != want:
        a, b = np.frombuffer(got, np.uint8), np.frombuffer(want, np.uint8)
        bad = np.flatnonzero(a != b)
        pytest.fail(f"{what} {qtype}: {bad.size} bytes differ, first at {bad[0]}: {a[bad[0]]} vs {b[bad[0]]}")


REAL_TENSORS = ["blk.0.attn_q.weight", "blk.3.ffn_down.weight", "blk.29.attn_v.weight", "output_norm.weight"]


@pytest.fixture(scope="module")
def real_weights(smollm_gguf):
    r = GGUFReader(smollm_gguf)
    by_name = {t.name: t for t in r.tensors}
    out = {}
    for name in REAL_TENSORS:
        t = by_name[name]
        out[name] = dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float32)
    # a slice of the embedding: many rows, a different weight distribution
    emb = by_name["token_embd.weight"]
    out["token_embd.weight[:512]"] = dequantize(emb.data[:512], emb.tensor_type).reshape(-1)
    return out


@pytest.mark.parametrize("qtype", QUANT_TYPES)
def test_quantize_matches_gguf_on_real_weights(tool, tmp_path, real_weights, qtype):
    for name, values in real_weights.items():
        got = meteor_quantize(tool, tmp_path, values, qtype)
        assert_same_bytes(got, reference_quantize(values, qtype), qtype, name)


def edge_blocks() -> np.ndarray:
    """Blocks of 32 that probe rounding, signs, ties and extreme scales."""
    blocks = []
    z = np.zeros(32, np.float32)
    blocks.append(z)  # all zero: d = 0
    blocks.append(-z)  # all negative zero
    one = z.copy()
    one[7] = 1000.0  # a single large value
    blocks.append(one)
    blocks.append(-one)
    tie = np.full(32, 63.5, np.float32)
    tie[0] = 127.0  # d = 1 exactly: x / d lands on .5 ties
    blocks.append(tie)
    blocks.append(np.arange(32, dtype=np.float32) - 15.5)
    blocks.append(np.linspace(-1, 1, 32, dtype=np.float32))
    eq = np.full(32, 0.0, np.float32)
    eq[::3] = -0.0
    eq[5] = 2.0
    blocks.append(eq)  # +0/-0 ties for min/max
    both = np.full(32, 1.0, np.float32)
    both[3], both[9] = -4.0, 4.0  # equal magnitude, opposite signs: the first wins
    blocks.append(both)
    blocks.append(np.full(32, 1e-38, np.float32))  # tiny scale: 1/d overflows
    blocks.append(np.full(32, 3e-41, np.float32))  # subnormals
    big = np.full(32, 6.0e4, np.float32)
    big[1] = -6.5e4
    blocks.append(big)  # near the f16 limit
    huge = np.full(32, 1e38, np.float32)
    huge[2] = -3e38
    blocks.append(huge)  # max - min overflows to inf
    blocks.append(np.full(32, 7.0, np.float32))  # constant block
    rng = np.random.default_rng(7)
    for scale in (1e-6, 1e-3, 1.0, 1e3, 1e5):
        blocks.append((rng.standard_normal(32) * scale).astype(np.float32))
    return np.concatenate(blocks)


def nonfinite_blocks() -> np.ndarray:
    blocks = []
    nan = np.ones(32, np.float32)
    nan[4] = np.nan
    blocks.append(nan)
    inf = np.ones(32, np.float32)
    inf[10] = np.inf
    blocks.append(inf)
    ninf = np.ones(32, np.float32)
    ninf[0] = -np.inf
    blocks.append(ninf)
    return np.concatenate(blocks)


@pytest.mark.parametrize("qtype", QUANT_TYPES)
def test_quantize_matches_gguf_on_random_and_edge_data(tool, tmp_path, qtype):
    rng = np.random.default_rng(1234)
    data = {
        "normal": rng.standard_normal(32 * 4096).astype(np.float32),
        "uniform": rng.uniform(-3, 3, 32 * 1024).astype(np.float32),
        "heavy-tailed": (rng.standard_cauchy(32 * 1024) * 1e-2).astype(np.float32),
        "edge blocks": edge_blocks(),
        "non-finite blocks": nonfinite_blocks(),
    }
    for what, values in data.items():
        got = meteor_quantize(tool, tmp_path, values, qtype)
        assert_same_bytes(got, reference_quantize(values, qtype), qtype, what)


@pytest.mark.parametrize("qtype", ["F16", "BF16"])
def test_half_conversions_match_on_random_bit_patterns(tool, tmp_path, qtype):
    """Every class of float32: NaNs with payloads, infinities, subnormals, ties."""
    rng = np.random.default_rng(99)
    bits = rng.integers(0, 2**32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    specials = np.array(
        [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7F800001, 0xFF800001, 0x7FC00000, 0x7FA00000,
         0x7F802000, 0x7FFFFFFF, 0xFFFFFFFF, 0x477FF000, 0x477FEFFF, 0x33000000, 0x33000001,
         0x387FE000, 0x387FF000, 0x3F808000, 0x3F818000, 0x7F7FFFFF, 0xFF7FFFFF, 0x00000001],
        dtype=np.uint32,
    )
    values = np.concatenate([specials, bits]).view(np.float32)
    got = meteor_quantize(tool, tmp_path, values, qtype)
    assert_same_bytes(got, reference_quantize(values, qtype), qtype, "bit patterns")


def test_quantize_rejects_partial_blocks(tool, tmp_path):
    src, dst = tmp_path / "in.f32", tmp_path / "out.bin"
    src.write_bytes(np.ones(33, np.float32).tobytes())
    proc = subprocess.run([str(tool), "quantize", "Q8_0", str(src), str(dst)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "blocks" in proc.stderr
    assert not dst.exists()
