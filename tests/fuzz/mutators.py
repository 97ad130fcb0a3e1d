"""Seeded mutators for the fuzz stage. Every function takes a random.Random and returns the
mutated input and a short description of what was done (shown when a mutant fails).

Byte mutators work on any file; the structure-aware ones change one thing a parser must
check: a GGUF header field or metadata value, a JSON value's type or size, a safetensors
header entry, a JSONL line, a YAML value.
"""

from __future__ import annotations

import json
import re
import struct

from fuzz import seeds
from fuzz.seeds import ARRAY, BOOL, F32, F64, I8, I16, I32, I64, STRING, U8, U16, U32, U64

INTERESTING_U64 = [0, 1, 2, 3, 7, 8, 31, 32, 33, 255, 256, 4095, 4096, 65535, 65536,
                   2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**53, 2**62, 2**63 - 1,
                   2**63, 2**64 - 32, 2**64 - 1]
INTERESTING_I64 = [0, 1, -1, -2, 2, 3, 127, -128, 32767, -32768, 2**31 - 1, -2**31, 2**63 - 1,
                   -2**63, 1000000]
INTERESTING_F = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e-30, 1e30, 3.4e38, float("inf"),
                 float("-inf"), float("nan"), 65504.0, -1e9]


def pick(rng, seq):
    return seq[rng.randrange(len(seq))]


# ---- bytes ------------------------------------------------------------------------------------


def flip_bits(rng, data):
    b = bytearray(data)
    n = rng.randint(1, 8)
    for _ in range(n):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b), f"{n} bit flip(s)"


def set_bytes(rng, data):
    b = bytearray(data)
    i = rng.randrange(len(b))
    v = pick(rng, [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
                   b"\xff" * 8, b"\x00\x00\x00\x80", b"\n", b"\"", b"{", b"}"])
    b[i:i + len(v)] = v
    return bytes(b), f"bytes {v!r} at {i}"


def insert_bytes(rng, data):
    i = rng.randrange(len(data) + 1)
    v = pick(rng, [b"\x00", b"\xff\xfe", b"\xc3\x28", b"\xe2\x82", b"\n", b"\r\n", b"[" * 64,
                   b"\\u0000", b"\t", b"#", b":", b"- ", b"&a ", b"*a", b"\xef\xbb\xbf",
                   bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))])
    return data[:i] + v + data[i:], f"inserted {v[:20]!r} at {i}"


def delete_range(rng, data):
    i = rng.randrange(len(data))
    n = rng.randint(1, max(1, min(64, len(data) - i)))
    return data[:i] + data[i + n:], f"deleted {n} bytes at {i}"


def truncate(rng, data):
    i = rng.randrange(len(data))
    return data[:i], f"truncated to {i} bytes"


def duplicate_range(rng, data):
    i = rng.randrange(len(data))
    n = rng.randint(1, max(1, min(256, len(data) - i)))
    j = rng.randrange(len(data) + 1)
    return data[:j] + data[i:i + n] + data[j:], f"copied {n} bytes from {i} to {j}"


def write_int(rng, data):
    b = bytearray(data)
    size = pick(rng, [4, 8])
    i = rng.randrange(max(1, len(b) - size))
    v = pick(rng, INTERESTING_U64) & ((1 << (8 * size)) - 1)
    b[i:i + size] = v.to_bytes(size, "little")
    return bytes(b), f"u{8 * size} {v} at {i}"


BYTE_MUTATORS = [flip_bits, set_bytes, insert_bytes, delete_range, truncate, duplicate_range,
                 write_int]


def mutate_bytes(rng, data, head=None):
    """One byte mutation; with head, most of them fall in data[:head] (a header)."""
    if head is not None and head < len(data) and rng.random() < 0.8:
        out, what = pick(rng, BYTE_MUTATORS)(rng, data[:head])
        return out + data[head:], what + " (header)"
    return pick(rng, BYTE_MUTATORS)(rng, data)


# ---- GGUF -----------------------------------------------------------------------------------


def _field_value(rng, kind, size, vtype, old):
    if kind in ("value_type", "array_type"):
        return pick(rng, [0, 1, 5, 6, 7, 8, 9, 10, 12, 13, 14, 255, 2**31, 2**32 - 1])
    if kind == "tensor_type":
        return pick(rng, [0, 1, 2, 3, 6, 7, 8, 10, 12, 14, 16, 23, 24, 30, 31, 39, 40, 99,
                          2**31 - 1, 2**32 - 1])
    if kind == "n_dims":
        return pick(rng, [0, 1, 2, 3, 4, 5, 2**32 - 1])
    if kind == "dim":
        return pick(rng, [0, 1, 2, old - 1, old + 1, old * 2, 2**31, 2**32, 2**62, 2**63 - 1,
                          2**64 - 1, 31, 33])
    if kind == "tensor_offset":
        return pick(rng, [old + 1, old + 32, old - 32, 0, 2**32, 2**63, 2**64 - 32, 2**64 - 1,
                          old * 4 + 4096])
    if kind == "value" and vtype in (F32, F64):
        return pick(rng, INTERESTING_F)
    if kind == "value" and vtype in (I8, I16, I32, I64):
        lim = 1 << (8 * size - 1)
        return max(-lim, min(lim - 1, pick(rng, INTERESTING_I64)))
    if kind == "value" and vtype == BOOL:
        return pick(rng, [0, 1, 2, 255])
    lim = (1 << (8 * size)) - 1
    return min(lim, pick(rng, INTERESTING_U64 + [old + 1, max(old - 1, 0), old * 2]))


def gguf_field(rng, g):
    """One header number (count, length, type, dimension, offset, scalar value) rewritten;
    the kind of field is drawn first, so the many token strings do not crowd out the rest."""
    data, fields = g.encode()
    kind = pick(rng, sorted({f[0] for f in fields}))
    kind, off, size, vtype = pick(rng, [f for f in fields if f[0] == kind])
    fmt = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}[size]
    old = struct.unpack_from(fmt, data, off)[0]
    new = _field_value(rng, kind, size, vtype, old)
    b = bytearray(data)
    if kind == "value" and vtype in (F32, F64):
        struct.pack_into("<f" if size == 4 else "<d", b, off, new)
    elif kind == "value" and vtype in (I8, I16, I32, I64):
        struct.pack_into(fmt.lower(), b, off, new)
    else:
        struct.pack_into(fmt, b, off, new & ((1 << (8 * size)) - 1))
    return bytes(b), f"{kind} at byte {off}: {old} -> {new}"


def _kv_index(rng, g, prefer=None):
    keys = [i for i, (k, _, _) in enumerate(g.kv) if prefer is None or re.search(prefer, k)]
    return pick(rng, keys or list(range(len(g.kv))))


def _retyped(rng, vtype, value):
    """The value re-encoded under another type, or an odd value of that type."""
    target = pick(rng, [U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64])
    if target == STRING:
        return target, str(value)[:40] if not isinstance(value, tuple) else "x"
    if target == ARRAY:
        etype = pick(rng, [U32, I32, STRING, F32, ARRAY])
        if etype == ARRAY:
            return target, (ARRAY, [(U8, [1, 2])])
        if etype == STRING:
            return target, (STRING, ["a", "", "b c"])
        return target, (etype, [1, 2, 3][:rng.randint(0, 3)])
    if target == BOOL:
        return target, True
    if target in (F32, F64):
        return target, pick(rng, INTERESTING_F)
    n = value if isinstance(value, int) and not isinstance(value, bool) else 2
    limits = {U8: (0, 255), I8: (-128, 127), U16: (0, 65535), I16: (-32768, 32767),
              U32: (0, 2**32 - 1), I32: (-2**31, 2**31 - 1), U64: (0, 2**64 - 1),
              I64: (-2**63, 2**63 - 1)}
    lo, hi = limits[target]
    return target, max(lo, min(hi, pick(rng, [n, -1, 0, hi, lo, n + 1])))


def gguf_retype(rng, g):
    i = _kv_index(rng, g)
    key, vtype, value = g.kv[i]
    nt, nv = _retyped(rng, vtype, value)
    g.kv[i] = (key, nt, nv)
    return g, f"metadata {key}: type {vtype} -> {nt} ({str(nv)[:60]})"


HPARAM_VALUES = [0, 1, 2, 3, 5, 7, 16, 31, 33, 64, 65, 128, 1000, 4096, 65536, 2**31 - 1,
                 2**31, 2**32 - 1]


def gguf_hparam(rng, g):
    """An architecture number (layers, widths, heads, context, eps, rope) set to an edge."""
    i = _kv_index(rng, g, r"^(llama|gemma3)\.")
    key, vtype, value = g.kv[i]
    if vtype in (F32, F64):
        nv = pick(rng, INTERESTING_F)
        nt = vtype
    else:
        nv = pick(rng, HPARAM_VALUES)
        nt = pick(rng, [U32, U32, I32, U64, I64])
        if nt == I32:
            nv = pick(rng, [-1, -2**31, nv if nv < 2**31 else 2**31 - 1])
        if nt == I64:
            nv = pick(rng, [-1, nv, -2**63])
    g.kv[i] = (key, nt, nv)
    return g, f"metadata {key} = {nv} (type {nt})"


def gguf_special_id(rng, g):
    """A special-token id or flag out of range."""
    n_vocab = len(dict((k, v) for k, _, v in g.kv)["tokenizer.ggml.tokens"][1])
    key = pick(rng, ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                     "tokenizer.ggml.padding_token_id", "tokenizer.ggml.unknown_token_id",
                     "tokenizer.ggml.eot_token_id", "tokenizer.ggml.add_bos_token",
                     "tokenizer.ggml.add_space_prefix"])
    value = pick(rng, [n_vocab, n_vocab - 1, n_vocab + 1, 2**31 - 1, 2**31, 2**32 - 1, 0])
    vtype = pick(rng, [U32, I32, U64, I64, BOOL, STRING])
    if vtype == I32:
        value = pick(rng, [-1, -2**31, min(value, 2**31 - 1)])
    if vtype == BOOL:
        value = True
    if vtype == STRING:
        value = "1"
    g.kv = [kv for kv in g.kv if kv[0] != key] + [(key, vtype, value)]
    return g, f"metadata {key} = {value!r} (type {vtype})"


def _token_edit(rng, tokens):
    what = pick(rng, ["drop_last", "drop_many", "add", "empty", "dup", "long", "utf8", "nul",
                      "none", "space"])
    t = list(tokens)
    if what == "drop_last":
        t.pop()
    elif what == "drop_many":
        del t[rng.randrange(len(t)):]
    elif what == "add":
        t += [f"extra{i}" for i in range(rng.randint(1, 300))]
    elif what == "empty":
        t[rng.randrange(len(t))] = ""
    elif what == "dup":
        i = rng.randrange(len(t))
        t[rng.randrange(len(t))] = t[i]
    elif what == "long":
        t[rng.randrange(len(t))] = "x" * pick(rng, [300, 5000, 70000])
    elif what == "utf8":
        t[rng.randrange(len(t))] = b"\xff\xfe\xc3"
    elif what == "nul":
        t[rng.randrange(len(t))] = b"a\x00b"
    elif what == "none":
        t = []
    elif what == "space":
        t[rng.randrange(len(t))] = " "
    return t, what


def gguf_vocab(rng, g):
    """The token list, token types, scores or merges edited (lengths, contents, values)."""
    kv = {k: (i, t, v) for i, (k, t, v) in enumerate(g.kv)}
    key = pick(rng, [k for k in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                                 "tokenizer.ggml.scores", "tokenizer.ggml.merges",
                                 "tokenizer.ggml.model", "tokenizer.ggml.pre",
                                 "tokenizer.chat_template") if k in kv])
    i, vtype, value = kv[key]
    if key == "tokenizer.ggml.tokens":
        t, what = _token_edit(rng, value[1])
        g.kv[i] = (key, ARRAY, (STRING, t))
    elif key == "tokenizer.ggml.token_type":
        t = list(value[1])
        what = pick(rng, ["short", "long", "value"])
        if what == "short":
            t.pop()
        elif what == "long":
            t.append(1)
        else:
            t[rng.randrange(len(t))] = pick(rng, [-1, 0, 2, 3, 4, 5, 6, 7, 99, 2**31 - 1])
        g.kv[i] = (key, ARRAY, (I32, t))
    elif key == "tokenizer.ggml.scores":
        t = list(value[1])
        what = pick(rng, ["short", "nan", "inf"])
        if what == "short":
            t.pop()
        else:
            t[rng.randrange(len(t))] = float(what)
        g.kv[i] = (key, ARRAY, (F32, t))
    elif key == "tokenizer.ggml.merges":
        t = list(value[1])
        bad = pick(rng, ["a", "", " ", "a  b", "zz qq", "h e extra", "\xff \xfe", "a\x00 b",
                         "Ġ Ġ", "<|im_start|> <|im_end|>"])
        what = f"merge {bad!r}"
        if t and rng.random() < 0.5:
            t[rng.randrange(len(t))] = bad
        else:
            t.append(bad)
        g.kv[i] = (key, ARRAY, (STRING, [m.encode("utf-8", "surrogatepass") if isinstance(m, str)
                                         else m for m in t]))
    else:
        nv = pick(rng, ["", "bert", "llama", "gpt2", "smollm", "qwen2", "llama-bpe", "x" * 300,
                        "<|im_start|>", "{% for %}", "<start_of_turn>", "\x00"])
        what = f"= {nv!r}"
        g.kv[i] = (key, STRING, nv)
    return g, f"{key}: {what}"


def gguf_duplicate_kv(rng, g):
    key, vtype, value = g.kv[_kv_index(rng, g)]
    g.kv.insert(rng.randrange(len(g.kv) + 1), (key, vtype, value))
    return g, f"metadata {key} twice"


def gguf_drop_kv(rng, g):
    i = _kv_index(rng, g)
    key = g.kv.pop(i)[0]
    return g, f"metadata {key} removed"


def gguf_arch(rng, g):
    i = _kv_index(rng, g, r"^general\.architecture$")
    nv = pick(rng, ["llama", "gemma3", "qwen2", "mistral", "gemma", "", "x" * 200, "gpt99"])
    g.kv[i] = ("general.architecture", STRING, nv)
    return g, f"general.architecture = {nv!r}"


def gguf_alignment(rng, g):
    a = pick(rng, [0, 1, 3, 8, 64, 4096, 2**31, 2**32 - 1])
    vtype = pick(rng, [U32, U64, I32, STRING])
    value = -1 if vtype == I32 else ("32" if vtype == STRING else a)
    g.kv.append(("general.alignment", vtype, value))
    if vtype in (U32, U64) and a and a & (a - 1) == 0 and a <= 4096:
        g.alignment = a  # a valid alignment, written consistently
    return g, f"general.alignment = {value!r} (type {vtype})"


def gguf_tensor(rng, g):
    """A tensor dropped, duplicated, renamed, reshaped, retyped or cut short."""
    i = rng.randrange(len(g.tensors))
    t = g.tensors[i]
    what = pick(rng, ["drop", "dup", "rename", "dims", "ndims", "type", "type_resized", "cut",
                      "empty_name", "long_name"])
    if what == "drop":
        g.tensors.pop(i)
    elif what == "dup":
        g.tensors.insert(rng.randrange(len(g.tensors) + 1), seeds.Tensor(t.name, list(t.dims),
                                                                         t.ggml_type, t.data))
    elif what == "rename":
        t.name = pick(rng, [g.tensors[rng.randrange(len(g.tensors))].name, t.name + "x",
                            "blk.99.attn_q.weight", "blk.-1.attn_q.weight", "output.weight"])
    elif what == "dims":
        t.dims = [pick(rng, [1, 2, 16, 31, 33, d * 2, d // 2 or 1, d + 32]) for d in t.dims]
    elif what == "ndims":
        t.dims = pick(rng, [[], t.dims[:1], t.dims + [1], t.dims + [2], [1] + t.dims,
                            t.dims + [1, 1, 1]])[:5]
    elif what in ("type", "type_resized"):
        t.ggml_type = pick(rng, [0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 30, 99])
        if what == "type_resized":
            be, bb = {2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
                      10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
                      14: (256, 210), 30: (1, 2), 0: (1, 4), 1: (1, 2)}.get(t.ggml_type, (1, 1))
            n = 1
            for d in t.dims:
                n *= d
            t.data = bytes(rng.randrange(256) for _ in range(max(1, n // be * bb)))
    elif what == "cut":
        t.data = t.data[:rng.randrange(len(t.data))]
        g.tensors.append(g.tensors.pop(i))  # last, so the file really ends short
    elif what == "empty_name":
        t.name = ""
    else:
        t.name = "blk.0." + "x" * 300
    return g, f"tensor {i} ({t.name[:40]}): {what}"


# Block layouts of the GGML types a weight may be stored in: (elements, bytes, offsets of
# the float16 scales in a block).
QUANT_BLOCKS = {0: (1, 4, ()), 1: (1, 2, ()), 30: (1, 2, ()), 2: (32, 18, (0,)),
                3: (32, 20, (0, 2)), 6: (32, 22, (0,)), 7: (32, 24, (0, 2)), 8: (32, 34, (0,)),
                10: (256, 84, (80, 82)), 11: (256, 110, (108,)), 12: (256, 144, (0, 2)),
                13: (256, 176, (0, 2)), 14: (256, 210, (208,))}


def quant_data(rng, ggml_type, n):
    """n elements of plausible data in a GGML type: small scales, random quants."""
    be, bb, scales = QUANT_BLOCKS[ggml_type]
    if ggml_type == 0:
        return seeds.f32_bytes(rng, n)
    if ggml_type == 1:
        return seeds.f16_bytes(rng, n)
    if ggml_type == 30:
        return b"".join(struct.pack("<f", rng.uniform(-0.1, 0.1))[2:] for _ in range(n))
    out = bytearray()
    for _ in range(max(1, n // be)):
        block = bytearray(rng.randrange(256) for _ in range(bb))
        for off in scales:
            block[off:off + 2] = struct.pack("<e", rng.uniform(0.001, 0.01))
        out += block
    return bytes(out)


def gguf_retype_tensor(rng, g):
    """A weight matrix stored in another GGML type, with valid data of that type: the file
    still loads, so the kernels see every mix of storage types a file can hold."""
    mats = [t for t in g.tensors if len(t.dims) == 2]
    t = pick(rng, mats)
    t.ggml_type = pick(rng, sorted(QUANT_BLOCKS))
    t.data = quant_data(rng, t.ggml_type, t.dims[0] * t.dims[1])
    return g, f"tensor {t.name} stored as GGML type {t.ggml_type}"


NONFINITE = {0: ("<f", [float("nan"), float("inf"), float("-inf"), 3e38]),
             1: ("<e", [float("nan"), float("inf"), float("-inf"), 65504.0])}


def gguf_nonfinite(rng, g):
    """Some or all values of a float tensor made NaN, infinite or huge."""
    t = pick(rng, [t for t in g.tensors if t.ggml_type in NONFINITE])
    fmt, values = NONFINITE[t.ggml_type]
    size = struct.calcsize(fmt)
    n = len(t.data) // size
    v = pick(rng, values)
    b = bytearray(t.data)
    which = range(n) if rng.random() < 0.4 else [rng.randrange(n) for _ in range(rng.randint(1, 4))]
    for i in which:
        struct.pack_into(fmt, b, i * size, v)
    t.data = bytes(b)
    return g, f"tensor {t.name}: {'all' if len(which) == n else len(which)} values = {v}"


def gguf_version(rng, g):
    g.version = pick(rng, [0, 1, 2, 4, 0x03000000, 0xFFFFFFFF])
    return g, f"version {g.version}"


GGUF_STRUCTURED = [gguf_retype, gguf_hparam, gguf_hparam, gguf_special_id, gguf_vocab,
                   gguf_vocab, gguf_duplicate_kv, gguf_drop_kv, gguf_arch, gguf_alignment,
                   gguf_tensor, gguf_tensor, gguf_retype_tensor, gguf_retype_tensor,
                   gguf_nonfinite, gguf_version]


def mutate_gguf(rng, seed):
    """-> (file bytes, description): a third byte-level, a third header fields, a third
    semantic edits of the metadata and tensors (sometimes two at once)."""
    r = rng.random()
    if r < 0.3:
        data, fields = seed.copy().encode()
        return mutate_bytes(rng, data, head=fields[-1][1] + fields[-1][2])
    if r < 0.6:
        return gguf_field(rng, seed.copy())
    g, what = pick(rng, GGUF_STRUCTURED)(rng, seed.copy())
    if rng.random() < 0.25:
        g, more = pick(rng, GGUF_STRUCTURED)(rng, g)
        what += "; " + more
    return g.encode()[0], what


# ---- JSON documents ---------------------------------------------------------------------------


ODD_JSON_VALUES = [None, True, False, 0, -1, 1, 2**31, 2**31 - 1, 2**32, 2**53 + 1, 2**63,
                   -2**63, 1e308, -1e308, 1e-310, 0.5, 1.5, -0.0, "", "x", "1", "NaN",
                   "\u0000", "\ud7ff\uffff", [], [1], [None], {}, {"a": 1}, "é" * 5000]


def odd_value(rng):
    return pick(rng, ODD_JSON_VALUES)


def _paths(doc, prefix=()):
    """Every (path) to a value inside doc, for objects and lists."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:64]):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,))
    return out


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def json_value(rng, doc):
    """Some value anywhere in the document replaced, removed, or given a sibling."""
    paths = _paths(doc)
    if not paths:
        return odd_value(rng), "the whole document replaced"
    path = pick(rng, paths)
    parent = _get(doc, path[:-1])
    what = pick(rng, ["replace", "replace", "replace", "delete", "numeric"])
    if what == "delete":
        del parent[path[-1]]
        return doc, f"{'/'.join(map(str, path))} deleted"
    if what == "numeric":
        v = pick(rng, [0, -1, 2**31, 2**31 - 1, 2**32 + 7, 2**53, 1e300, -1e300, 0.1, 3, 7, 1e9])
    else:
        v = odd_value(rng)
    parent[path[-1]] = v
    return doc, f"{'/'.join(map(str, path))} = {str(v)[:40]!r}"


def dump_json(doc):
    return json.dumps(doc, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


# ---- Hugging Face folder ----------------------------------------------------------------------


CONFIG_EXTRAS = [
    ("model_type", ["gemma3", "gemma3_text", "qwen2", "mistral", "llama", "mamba9", "", 3]),
    ("head_dim", [0, 1, 3, 8, 16, 2**31 - 1, -8]),
    ("num_key_value_heads", [0, 1, 3, 4, 8, -2, 2**31]),
    ("num_attention_heads", [0, 1, 3, 2**31 - 1]),
    ("num_hidden_layers", [0, 1, 3, 1000, 2**31 - 1, -1]),
    ("hidden_size", [0, 1, 16, 33, 64, 2**31 - 1]),
    ("vocab_size", [0, 1, 200, 265, 267, 512, 2**31 - 1, -1]),
    ("intermediate_size", [0, 1, 32, 2**31 - 1]),
    ("max_position_embeddings", [0, 1, 2**31 - 1, -1]),
    ("rms_norm_eps", [0, -1, 1e-300, 1e300]),
    ("rope_theta", [0, -1, 1e300, 1e-300]),
    ("tie_word_embeddings", [True, "yes", 1]),
    ("attention_bias", [True, 1]),
    ("rope_scaling", [{"type": "linear", "factor": 0}, {"rope_type": "linear", "factor": -1e300},
                      {"rope_type": "yarn"}, {"type": 3}, [], "linear"]),
    ("rope_parameters", [{"rope_theta": 0}, {"full_attention": {"rope_theta": -1}},
                         {"full_attention": 1}, []]),
    ("layer_types", [["full_attention"], ["sliding_attention"] * 2, [1, 2], [], "x"]),
    ("sliding_window", [0, -1, 1, 2**31 - 1]),
    ("sliding_window_pattern", [0, -1, 1, 2**31 - 1]),
    ("query_pre_attn_scalar", [0, -1, 1e300]),
    ("final_logit_softcapping", [0, -1, 1e-300]),
    ("use_sliding_window", [True]),
]


def hf_config(rng, files):
    doc = json.loads(files["config.json"])
    if rng.random() < 0.5:
        key, values = pick(rng, CONFIG_EXTRAS)
        doc[key] = pick(rng, values)
        what = f"config.json {key} = {str(doc[key])[:60]}"
        if rng.random() < 0.3:
            doc, more = json_value(rng, doc)
            what += "; " + more
    else:
        doc, what = json_value(rng, doc)
        what = "config.json " + what
    files["config.json"] = dump_json(doc)
    return files, what


def _tok_model(rng, doc):
    model = doc["model"]
    vocab, merges = model["vocab"], model["merges"]
    what = pick(rng, ["vocab_id", "vocab_drop", "vocab_huge", "merge_bad", "merge_missing",
                      "merge_type", "merges_type", "vocab_type", "byte_fallback", "unk",
                      "model_type", "affix", "dup_id"])
    if what == "vocab_id":
        k = pick(rng, list(vocab))
        vocab[k] = pick(rng, [-1, 1.5, 2**24, 2**30, 2**31, 16777216 * 64, "3", None, 265, 1e300])
        return f"vocab[{k!r}] = {vocab[k]!r}"
    if what == "vocab_drop":
        k = pick(rng, list(vocab))
        del vocab[k]
        return f"vocab {k!r} removed"
    if what == "vocab_huge":
        vocab["zzz"] = pick(rng, [100000, 2**20, 16777216 * 64 - 1])
        return f"vocab id {vocab['zzz']}"
    if what == "dup_id":
        ks = list(vocab)
        vocab[pick(rng, ks)] = vocab[pick(rng, ks)]
        return "two tokens share an id"
    if what == "merge_bad":
        bad = pick(rng, [["h"], ["h", "e", "x"], "h", "he", " h", "h e f", "", [1, 2], [None, "e"],
                         ["", ""], "h  e"])
        merges.insert(rng.randrange(len(merges) + 1), bad)
        return f"merge {bad!r}"
    if what == "merge_missing":
        merges.append(pick(rng, [["q", "z"], ["he", "ll"], ["Ġthe", "Ġthe"]]))
        return f"merge {merges[-1]!r} of a missing product"
    if what == "merge_type":
        merges[rng.randrange(len(merges))] = odd_value(rng)
        return "a merge of the wrong type"
    if what == "merges_type":
        model["merges"] = odd_value(rng)
        return f"merges = {str(model['merges'])[:40]}"
    if what == "vocab_type":
        model["vocab"] = pick(rng, [[], [["a", 1]], "x", None, 3, {}])
        return f"vocab = {str(model['vocab'])[:40]}"
    if what == "byte_fallback":
        model["byte_fallback"] = True
        return "byte_fallback without byte tokens"
    if what == "unk":
        model["unk_token"] = pick(rng, ["<unk>", "h", 3, [], "<|im_end|>"])
        return f"unk_token = {model['unk_token']!r}"
    if what == "model_type":
        model["type"] = pick(rng, ["WordPiece", "Unigram", 3, None, ""])
        return f"model.type = {model['type']!r}"
    model[pick(rng, ["continuing_subword_prefix", "end_of_word_suffix"])] = "##"
    return "a subword affix"


REGEXES = ["(((", "[", "\\p{Zzz}", "(?<=a+)b", "a{99999}", "(a*)*b", "\\", "", "(?P<n>a)",
           "\\p{L}+|\\s+", "\\x{110000}", "(?i)X", "[\\d-z]", "\u2581"]


def _tok_pipeline(rng, doc):
    what = pick(rng, ["split", "pre_type", "normalizer", "post", "decoder", "seq_type",
                      "metaspace", "added"])
    if what == "split":
        pat = pick(rng, REGEXES)
        key = pick(rng, ["Regex", "String", "Other"])
        doc["pre_tokenizer"]["pretokenizers"].insert(0, {
            "type": "Split", "pattern": {key: pat},
            "behavior": pick(rng, ["Isolated", "Removed", "MergedWithNext", "Contiguous", None, 3]),
            "invert": pick(rng, [False, True, "no"])})
        return f"Split {key} {pat!r}"
    if what == "pre_type":
        doc["pre_tokenizer"] = pick(rng, [{"type": "Whitespace"}, {"type": 3}, {}, [], "ByteLevel",
                                          {"type": "Digits"}, {"type": "ByteLevel",
                                                               "use_regex": False}])
        return f"pre_tokenizer = {str(doc['pre_tokenizer'])[:60]}"
    if what == "seq_type":
        doc["pre_tokenizer"]["pretokenizers"] = odd_value(rng)
        return "pretokenizers of the wrong type"
    if what == "normalizer":
        doc["normalizer"] = pick(rng, [{"type": "NFKC"}, {"type": "Lowercase"},
                                       {"type": "Sequence", "normalizers": 3},
                                       {"type": "Replace", "pattern": {"String": " "},
                                        "content": "\u2581"},
                                       {"type": "Prepend", "prepend": 3}, {"type": "NFC"}, []])
        return f"normalizer = {str(doc['normalizer'])[:60]}"
    if what == "metaspace":
        doc["pre_tokenizer"] = {"type": "Metaspace",
                                "replacement": pick(rng, ["\u2581", "_", "", 3]),
                                "prepend_scheme": pick(rng, ["always", "first", "never", 3, None]),
                                "split": pick(rng, [True, False, "x"])}
        return f"Metaspace {doc['pre_tokenizer']}"
    if what == "post":
        tok = pick(rng, ["<|im_start|>", "nope", "", 3])
        doc["post_processor"] = {"type": "TemplateProcessing",
                                 "single": pick(rng, [[{"SpecialToken": {"id": tok}}],
                                                      [], [{"Sequence": {"id": "A"}},
                                                           {"SpecialToken": {"id": tok}}],
                                                      "x", [3], [{"SpecialToken": 3}]])}
        return f"post_processor {str(doc['post_processor'])[:60]}"
    if what == "decoder":
        doc["decoder"] = pick(rng, [{"type": "Strip", "content": " ", "start": 1e300},
                                    {"type": "Metaspace", "prepend_scheme": 3},
                                    {"type": "Sequence", "decoders": 3}, [], {"type": "Fuse"}])
        return f"decoder {str(doc['decoder'])[:60]}"
    added = doc["added_tokens"]
    e = added[rng.randrange(len(added))]
    k = pick(rng, ["id", "content", "special"])
    e[k] = pick(rng, [None, -1, 2**31, 16777216 * 64, "", "h", "he", 3, True, 1e300])
    return f"added_tokens {k} = {e[k]!r}"


def hf_tokenizer(rng, files):
    doc = json.loads(files["tokenizer.json"])
    r = rng.random()
    if r < 0.4:
        what = _tok_model(rng, doc)
    elif r < 0.75:
        what = _tok_pipeline(rng, doc)
    else:
        doc, what = json_value(rng, doc)
    files["tokenizer.json"] = dump_json(doc)
    return files, "tokenizer.json " + what


def hf_tokenizer_config(rng, files):
    doc = json.loads(files["tokenizer_config.json"])
    key = pick(rng, ["bos_token", "eos_token", "pad_token", "add_bos_token", "add_eos_token",
                     "chat_template", "tokenizer_class"])
    doc[key] = pick(rng, [None, 3, [], {}, {"content": 3}, {"content": "<|im_end|>"}, "nope", True,
                          [{"name": "default", "template": 3}], [{"template": "<start_of_turn>"}],
                          "GemmaTokenizer", "<|im_start|>", "{{"])
    files["tokenizer_config.json"] = dump_json(doc)
    return files, f"tokenizer_config.json {key} = {str(doc[key])[:60]}"


def split_safetensors(raw):
    """-> (header dict, data bytes) of a .safetensors file."""
    n = struct.unpack_from("<Q", raw)[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def mutate_safetensors(rng, raw):
    """One header entry's dtype, shape or offsets broken, an entry dropped, duplicated or
    added, the metadata changed, the header length or padding wrong, the data cut short."""
    header, data = split_safetensors(raw)
    names = [k for k in header if k != "__metadata__"]
    name = pick(rng, names)
    e = header[name]
    what = pick(rng, ["dtype", "shape", "offsets", "offsets", "drop", "dup", "meta", "meta",
                      "unpadded", "hlen", "not_object", "data_cut", "entry_type", "extra"])
    pad, hlen = True, None
    if what == "dtype":
        e["dtype"] = pick(rng, ["F64", "I8", "U8", "BOOL", "F8_E4M3", "", 3, None, "f32", "BF16",
                                "F16", "F32"])
    elif what == "shape":
        e["shape"] = pick(rng, [[], [0], [-1], [1.5], [2**53], [2**53 + 2, 2], ["x"], None,
                                e["shape"][::-1], e["shape"] + [1], [1] * 5, [2**32, 2**32],
                                [s * 2 for s in e["shape"]], e["shape"][:1]])
    elif what == "offsets":
        b, en = e["data_offsets"]
        e["data_offsets"] = pick(rng, [[en, b], [b, en + 4], [b + 4, en], [b, 2**53],
                                       [-4, en], [b + 0.5, en], [b], [b, en, en], None,
                                       [len(data), len(data) + en - b], [0, en - b],
                                       [b + 2, en + 2], [2**64, 2**64 + 4]])
    elif what == "drop":
        del header[name]
    elif what == "dup":
        text = json.dumps(header)[:-1] + ", " + json.dumps({name: e})[1:-1] + "}"
        return _safetensors(text.encode(), data, True), f"{name} twice"
    elif what == "meta":
        meta = header.get("__metadata__")
        if isinstance(meta, dict) and meta and rng.random() < 0.7:
            k = pick(rng, sorted(meta))
            meta[k] = pick(rng, ["", "-1", "0", "1", "x", "18446744073709551616", "1:0:0", ":",
                                 "99999999999", "0:99999", "1.5", "\u0000", 3, None])
            what = f"metadata {k} = {meta[k]!r}"
        else:
            header["__metadata__"] = pick(rng, [3, [], None, {"format": 3}, "x"])
    elif what == "unpadded":
        pad = False
    elif what == "hlen":
        hlen = pick(rng, [0, 1, 7, 2**63, 2**64 - 1, 10**9])
    elif what == "not_object":
        return _safetensors(pick(rng, [b"[]", b"3", b"null", b'"x"', b"{"]), data, False), \
            "header is not an object"
    elif what == "data_cut":
        data = data[:rng.randrange(len(data))]
    elif what == "entry_type":
        header[name] = odd_value(rng)
    else:
        header[re.sub(r"\.0\.", ".9.", name) if ".0." in name else name + ".extra"] = dict(e)
    text = json.dumps(header, allow_nan=True).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    raw = struct.pack("<Q", len(text) if hlen is None else hlen) + text + data
    return raw, f"{name}: {what} {str(header.get(name, ''))[:80]}"


def _safetensors(text, data, pad):
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


ST_NONFINITE = {"F32": ("<I", [0x7FC00000, 0x7F800000, 0xFF800000]),
                "F16": ("<H", [0x7E00, 0x7C00, 0xFC00]), "BF16": ("<H", [0x7FC0, 0x7F80, 0xFF80])}


def safetensors_nonfinite(rng, raw):
    """Some or all values of one tensor made NaN or infinite (the header stays valid)."""
    header, data = split_safetensors(raw)
    name = pick(rng, [k for k in header if k != "__metadata__"])
    e = header[name]
    fmt, values = ST_NONFINITE[e["dtype"]]
    size = struct.calcsize(fmt)
    b, en = e["data_offsets"]
    v = pick(rng, values)
    out = bytearray(data)
    n = (en - b) // size
    which = range(n) if rng.random() < 0.4 else [rng.randrange(n) for _ in range(3)]
    for i in which:
        struct.pack_into(fmt, out, b + i * size, v)
    return raw[:len(raw) - len(data)] + bytes(out), f"{name}: values {v:#x}"


def hf_safetensors(rng, files):
    if rng.random() < 0.2:
        files["model.safetensors"], what = safetensors_nonfinite(rng, files["model.safetensors"])
    else:
        files["model.safetensors"], what = mutate_safetensors(rng, files["model.safetensors"])
    return files, "model.safetensors " + what


def hf_bytes(rng, files):
    name = pick(rng, sorted(files))
    head = None
    if name == "model.safetensors":
        head = 8 + struct.unpack_from("<Q", files[name])[0]
    files[name], what = mutate_bytes(rng, files[name], head)
    return files, f"{name}: {what}"


def hf_remove(rng, files):
    name = pick(rng, ["tokenizer.json", "tokenizer_config.json", "config.json"])
    del files[name]
    return files, f"{name} removed"


HF_MUTATORS = [(hf_config, 3), (hf_tokenizer, 4), (hf_tokenizer_config, 1),
               (hf_safetensors, 4), (hf_bytes, 2), (hf_remove, 0.3)]


def mutate_hf(rng, seed_files):
    files = dict(seed_files)
    fn = rng.choices([f for f, _ in HF_MUTATORS], [w for _, w in HF_MUTATORS])[0]
    return fn(rng, files)


# ---- JSONL --------------------------------------------------------------------------------------


def _line_bytes(rec):
    return json.dumps(rec, ensure_ascii=False).encode("utf-8", "surrogatepass")


def jsonl_structured(rng, data):
    lines = data.split(b"\n")
    idx = [i for i, l in enumerate(lines) if l.strip()]
    i = pick(rng, idx)
    line = lines[i]
    what = pick(rng, ["field", "field", "delete", "garbage", "utf8", "nul_raw", "nul_escape",
                      "not_object", "cut", "long", "nested", "blank", "crlf", "bom", "no_newline",
                      "dup", "huge_number", "extra_key"])
    rec = json.loads(line)
    if what == "field":
        k = pick(rng, list(rec))
        rec[k] = odd_value(rng)
        lines[i] = _line_bytes(rec)
        what += f" {k} = {str(rec[k])[:40]!r}"
    elif what == "delete":
        k = pick(rng, list(rec))
        del rec[k]
        lines[i] = _line_bytes(rec)
        what += f" {k}"
    elif what == "extra_key":
        rec[pick(rng, ["question", "title", "answer", "chosen", "rejected", "system", "id",
                       "split", "", "question_content"])] = odd_value(rng)
        lines[i] = _line_bytes(rec)
    elif what == "garbage":
        lines[i] = line + pick(rng, [b" x", b"}", b",", b" {}", b"\x00", b" // c", b"]"])
    elif what == "utf8":
        k = pick(rng, [k for k, v in rec.items() if isinstance(v, str)] or list(rec))
        pos = line.find(b'"' + k.encode() + b'": "')
        at = pos + len(k) + 5 if pos >= 0 else len(line) // 2
        lines[i] = line[:at] + pick(rng, [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82",
                                          b"\xf8\x88\x80\x80\x80"]) + line[at:]
    elif what == "nul_raw":
        at = rng.randrange(len(line))
        lines[i] = line[:at] + b"\x00" + line[at:]
    elif what == "nul_escape":
        k = pick(rng, [k for k, v in rec.items() if isinstance(v, str)] or list(rec))
        rec[k] = pick(rng, ["\u0000", "a\u0000b", "\u0000" * 3 + "x"])
        lines[i] = _line_bytes(rec)
    elif what == "not_object":
        lines[i] = pick(rng, [b"[]", b"3", b"null", b'"q"', b"[{\"title\": \"a\"}]", b"true"])
    elif what == "cut":
        lines[i] = line[:rng.randrange(len(line))]
    elif what == "long":
        k = pick(rng, list(rec))
        rec[k] = "word " * pick(rng, [2000, 20000])
        lines[i] = _line_bytes(rec)
    elif what == "nested":
        depth = pick(rng, [100, 2000])
        lines[i] = b'{"title": ' + b"[" * depth + b"]" * depth + b"}"
    elif what == "blank":
        lines.insert(i, pick(rng, [b"", b"   ", b"\t", b"\r"]))
    elif what == "crlf":
        lines = [l + b"\r" for l in lines]
    elif what == "bom":
        lines[0] = b"\xef\xbb\xbf" + lines[0]
    elif what == "no_newline":
        lines = [l for l in lines if l]
        return b"\n".join(lines), what
    elif what == "dup":
        lines.insert(i, line)
    else:
        number = pick(rng, [b"1e999", b"-1e999", b"123456789012345678901234567890", b"0x10",
                            b"NaN", b"-", b"1.", b".5"])
        lines[i] = line[:-1] + b', "n": ' + number + b"}"
    return b"\n".join(lines), f"line {i + 1}: {what}"


def mutate_jsonl(rng, data):
    if rng.random() < 0.25:
        return mutate_bytes(rng, data)
    out, what = jsonl_structured(rng, data)
    if rng.random() < 0.2:
        out, more = mutate_bytes(rng, out)
        what += "; " + more
    return out, what


# ---- YAML -------------------------------------------------------------------------------------


YAML_VALUES = [b"[1, 2]", b"{a: 1}", b"abc", b"true", b"~", b"", b"1e400", b"-1e400",
               b"99999999999999999999999", b"-1", b"0", b"0x10", b".inf", b".nan", b"-.inf",
               b"2147483648", b"-2147483649", b"18446744073709551616", b"1_000", b"0o17",
               b"!!binary aGVsbG8=", b"|\n  block\n  text", b">\n  folded", b"\"\\0\"",
               b"'x\x00y'", b"\"\\x00\"", b"[]", b"{}", b"- a\n- b", b"*undefined",
               b"\"" + b"9" * 400 + b"\"", b"1.5", b"nan", b"1e-400", b"'3'", b"yes", b"off"]


def yaml_structured(rng, data):
    lines = data.split(b"\n")
    idx = [i for i, l in enumerate(lines) if b":" in l and not l.startswith(b"#")]
    i = pick(rng, idx)
    key, _, value = lines[i].partition(b":")
    what = pick(rng, ["value", "value", "value", "anchor", "alias_map", "nul", "tab", "docs",
                      "unknown", "dup", "long_key", "nested", "merge", "tag", "root"])
    if what == "value":
        v = pick(rng, YAML_VALUES)
        lines[i] = key + b": " + v
        what = f"{key.decode()} = {v[:30]!r}"
    elif what == "anchor":
        lines[i] = key + b": &a" + value
        j = pick(rng, idx)
        lines[j] = lines[j].partition(b":")[0] + b": *a"
        lines.append(b"other: *a")
    elif what == "alias_map":
        lines.insert(0, b"base: &m {lr: 1, seed: 2}")
        lines[i + 1] = key + b": *m"
    elif what == "nul":
        at = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:at] + b"\x00" + lines[i][at:]
    elif what == "tab":
        lines[i] = b"\t" + lines[i]
    elif what == "docs":
        lines.insert(i, b"---")
    elif what == "unknown":
        lines.append(pick(rng, [b"bogus: 1", b"config: x.yaml", b"help: true", b"model: x",
                                b"'': 1", b"? complex\n: key"]))
    elif what == "dup":
        lines.append(lines[i])
    elif what == "long_key":
        lines[i] = b"k" * pick(rng, [127, 128, 200, 5000]) + b": 1"
    elif what == "nested":
        lines[i] = key + b":\n  inner: 1\n  more: [1]"
    elif what == "merge":
        lines.insert(0, b"defaults: &d\n  seed: 1")
        lines.append(b"<<: *d")
    elif what == "tag":
        lines[i] = key + b": " + pick(rng, [b"!!str", b"!!int", b"!!float", b"!custom", b"!!seq",
                                            b"!!map"]) + value
    else:
        lines = [pick(rng, [b"- a\n- b", b"just text", b"[1, 2]", b"~", b"'x'", b"{", b"- [a: 1]"])]
    return b"\n".join(lines), what


def mutate_yaml(rng, data):
    if rng.random() < 0.25:
        return mutate_bytes(rng, data)
    out, what = yaml_structured(rng, data)
    if rng.random() < 0.15:
        out, more = yaml_structured(rng, out)
        what += "; " + more
    return out, what


# ---- LoRA adapter folder and training checkpoint ----------------------------------------------


ADAPTER_CONFIG_EDITS = [
    ("r", [0, -1, 1, 3, 64, 2**31, 1.5, "2", None]),
    ("lora_alpha", [0, -4, 1e300, float("nan"), "4", None]),
    ("target_modules", [[], ["q_proj"], ["nope"], "all-linear", "q_proj", [3], None,
                        ["q_proj", "q_proj"], ["lm_head"], ["embed_tokens"]]),
    ("rank_pattern", [{"q_proj": 4}, {"model.layers.0.self_attn.q_proj": 1}, {"q_proj": -1}, []]),
    ("alpha_pattern", [{"q_proj": 0}, {"v_proj": 1e300}, {"x": "y"}, 3]),
    ("use_dora", [True]), ("use_rslora", [True, "yes"]), ("fan_in_fan_out", [True]),
    ("bias", ["all", "lora_only", 3]), ("peft_type", ["PREFIX_TUNING", "", None, 3]),
    ("layers_to_transform", [[0], [9], -1, [0, 0]]), ("modules_to_save", [["lm_head"], "x"]),
]


def mutate_adapter(rng, seed_files):
    files = dict(seed_files)
    r = rng.random()
    if r < 0.35:
        doc = json.loads(files["adapter_config.json"])
        if rng.random() < 0.7:
            key, values = pick(rng, ADAPTER_CONFIG_EDITS)
            doc[key] = pick(rng, values)
            what = f"{key} = {str(doc[key])[:60]}"
        else:
            doc, what = json_value(rng, doc)
        files["adapter_config.json"] = dump_json(doc)
        return files, "adapter_config.json " + what
    if r < 0.8:
        files["adapter_model.safetensors"], what = mutate_safetensors(
            rng, files["adapter_model.safetensors"])
        return files, "adapter_model.safetensors " + what
    name = pick(rng, sorted(files))
    head = 8 + struct.unpack_from("<Q", files[name])[0] if name.endswith(".safetensors") else None
    files[name], what = mutate_bytes(rng, files[name], head)
    return files, f"{name}: {what}"


def mutate_checkpoint(rng, raw):
    """A training checkpoint: its header (metadata included) or its bytes."""
    if rng.random() < 0.75:
        out, what = mutate_safetensors(rng, raw)
        return out, "checkpoint " + what
    return mutate_bytes(rng, raw, 8 + struct.unpack_from("<Q", raw)[0])
