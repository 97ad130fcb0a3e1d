"""Bad input gives one clear error line and a non-zero exit, never a crash.

Each case starts from a valid file (checked to load) and breaks one thing.
"""
import json
import os
import shutil

import gguf
import numpy as np
import pytest
import torch
import transformers

from fuzz.seeds import gpt2_byte_chars


EMBD, FF, HEADS, LAYERS = 256, 512, 4, 2


def write_tiny_gguf(path, arch="llama", q_rows=EMBD, q_type=None, eps=1e-5):
    """A tiny llama-style GGUF with a 256-token byte-level vocabulary."""
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(LAYERS)
    w.add_context_length(128)
    w.add_embedding_length(EMBD)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_layer_norm_rms_eps(eps)
    w.add_rope_freq_base(10000.0)
    table = gpt2_byte_chars()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    # 256 byte tokens and one merge ("h e" -> "he").
    w.add_token_list([table[b] for b in range(256)] + ["he"])
    w.add_token_types([1] * 257)
    w.add_token_merges(["h e"])
    w.add_eos_token_id(0)
    rng = np.random.default_rng(0)

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)

    w.add_tensor("token_embd.weight", mat(257, EMBD))
    w.add_tensor("output_norm.weight", np.ones(EMBD, np.float32))
    for l in range(LAYERS):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", np.ones(EMBD, np.float32))
        if l == 1 and q_type is not None:
            # Raw bytes of the right size for the type, flagged with that type.
            block, size = gguf.GGML_QUANT_SIZES[q_type]
            raw = np.zeros((EMBD, EMBD // block * size), np.uint8)
            w.add_tensor(p + "attn_q.weight", raw, raw_dtype=q_type)
        else:
            w.add_tensor(p + "attn_q.weight", mat(q_rows, EMBD))
        w.add_tensor(p + "attn_k.weight", mat(EMBD, EMBD))
        w.add_tensor(p + "attn_v.weight", mat(EMBD, EMBD))
        w.add_tensor(p + "attn_output.weight", mat(EMBD, EMBD))
        w.add_tensor(p + "ffn_norm.weight", np.ones(EMBD, np.float32))
        w.add_tensor(p + "ffn_gate.weight", mat(FF, EMBD))
        w.add_tensor(p + "ffn_up.weight", mat(FF, EMBD))
        w.add_tensor(p + "ffn_down.weight", mat(EMBD, FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def assert_clean_error(proc, *needles):
    assert proc.returncode > 0, f"expected an error exit, got {proc.returncode}"
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one error line, got: {proc.stderr!r}"
    assert lines[0].startswith("meteor: error: "), lines[0]
    for n in needles:
        assert n.lower() in lines[0].lower(), f"{n!r} not in {lines[0]!r}"


@pytest.fixture
def tiny_gguf(tmp_path, run_meteor):
    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    out = run_meteor("info", path).stdout
    assert "architecture:   llama" in out
    return path


def test_valid_tiny_gguf_generates(tiny_gguf, run_meteor):
    out = json.loads(run_meteor("generate", "-m", tiny_gguf, "-p", "hello", "--greedy", "-n", 4,
                                "--json").stdout)
    assert out["prompt_tokens"] == 4  # he l l o
    assert len(out["tokens"]) <= 4


def test_missing_file(run_meteor, tmp_path):
    assert_clean_error(run_meteor("info", tmp_path / "nope.gguf", check=False), "nope.gguf")


def test_truncated_file(tiny_gguf, run_meteor, tmp_path):
    data = tiny_gguf.read_bytes()
    for cut in (3, 20, 200, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(data[:cut])
        assert_clean_error(run_meteor("info", bad, check=False), str(bad.name))


def test_bad_magic(tiny_gguf, run_meteor, tmp_path):
    bad = tmp_path / "magic.gguf"
    bad.write_bytes(b"GGXX" + tiny_gguf.read_bytes()[4:])
    assert_clean_error(run_meteor("info", bad, check=False), "magic")


def test_real_model_truncated(smollm_gguf, run_meteor, tmp_path):
    bad = tmp_path / "smol.gguf"
    with open(smollm_gguf, "rb") as f:
        bad.write_bytes(f.read(50_000_000))
    assert_clean_error(run_meteor("info", bad, check=False), "smol.gguf")


def test_wrong_tensor_shape(run_meteor, tmp_path):
    bad = write_tiny_gguf(tmp_path / "shape.gguf", q_rows=EMBD + 16)
    assert_clean_error(run_meteor("info", bad, check=False), "blk.0.attn_q.weight", "shape")


def test_unknown_architecture(run_meteor, tmp_path):
    bad = write_tiny_gguf(tmp_path / "arch.gguf", arch="gpt99")
    assert_clean_error(run_meteor("info", bad, check=False), "gpt99")


def test_unsupported_tensor_type(run_meteor, tmp_path):
    bad = write_tiny_gguf(tmp_path / "q2k.gguf", q_type=gguf.GGMLQuantizationType.Q2_K)
    assert_clean_error(run_meteor("info", bad, check=False), "blk.1.attn_q.weight", "Q2_K")


def test_infinite_norm_epsilon(run_meteor, tmp_path):
    bad = write_tiny_gguf(tmp_path / "eps.gguf", eps=float("inf"))
    assert_clean_error(run_meteor("info", bad, check=False),
                       "llama.attention.layer_norm_rms_epsilon = inf is out of range")


def make_hf_folder(path):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4)
    transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    return path


def test_malformed_tokenizer_json(run_meteor, tmp_path):
    folder = make_hf_folder(tmp_path / "hf")
    (folder / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": ')
    assert_clean_error(run_meteor("info", folder, check=False), "tokenizer.json")


def test_malformed_config_json(run_meteor, tmp_path):
    folder = make_hf_folder(tmp_path / "hf")
    (folder / "config.json").write_text("{not json")
    assert_clean_error(run_meteor("info", folder, check=False), "config.json")


def add_byte_tokenizer(folder):
    """tokenizer.json with the 256 byte tokens of make_hf_folder's vocabulary, no merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    table = gpt2_byte_chars()
    tok = Tokenizer(models.BPE(vocab={table[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture
def hf_folder(tmp_path, run_meteor):
    folder = add_byte_tokenizer(make_hf_folder(tmp_path / "hf"))
    assert "architecture:   llama" in run_meteor("info", folder).stdout
    return folder


@pytest.mark.parametrize("key, value, needle", [
    ("max_position_embeddings", 1e308,
     "max_position_embeddings = 1e+308 is out of range (1 .. 2147483647)"),
    ("num_attention_heads", 4.5, "num_attention_heads = 4.5 is not a whole number"),
    ("rms_norm_eps", -1e-6, "rms_norm_eps = -1e-06 is out of range"),
    ("rope_theta", 1e39, "rope_theta = 1e+39 is out of range"),
    ("hidden_size", "32", "hidden_size must be a number"),
])
def test_config_json_numbers_out_of_range(hf_folder, run_meteor, key, value, needle):
    cfg = json.loads((hf_folder / "config.json").read_text())
    cfg[key] = value
    (hf_folder / "config.json").write_text(json.dumps(cfg))
    assert_clean_error(run_meteor("info", hf_folder, check=False), "config.json", needle)


def test_unknown_hf_architecture(run_meteor, tmp_path):
    folder = make_hf_folder(tmp_path / "hf")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "mamba9"
    (folder / "config.json").write_text(json.dumps(cfg))
    assert_clean_error(run_meteor("info", folder, check=False), "mamba9")


def test_safetensors_truncated(run_meteor, tmp_path):
    folder = make_hf_folder(tmp_path / "hf")
    st = folder / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-100])
    assert_clean_error(run_meteor("info", folder, check=False))


@pytest.mark.parametrize("args, needle", [
    (["generate", "--bogus"], "--bogus"),
    (["generate", "-m"], "needs a value"),
    (["generate", "-p", "hi"], "-m"),
    (["generate", "-m", "x.gguf", "-p", "hi", "--temperature", "abc"], "number"),
    (["generate", "-m", "x.gguf", "-p", "hi", "--top-p", "2"], "top-p"),
    (["frobnicate"], "frobnicate"),
    (["generate", "-m", "x.gguf", "-p", "hi", "-t", "99999999999"],
     "-t = 99999999999 is out of range (0 .. 4096)"),
    (["generate", "-m", "x.gguf", "-p", "hi", "-n", "0"], "-n = 0 is out of range"),
    (["generate", "-m", "x.gguf", "-p", "hi", "--ctx", "-5"], "--ctx = -5 is out of range"),
    (["train", "--lr", "-1"], "--lr = -1 is out of range (a finite number > 0)"),
    (["train", "--lora-dropout", "1"], "--lora-dropout = 1 is out of range"),
    (["distill", "--test-fraction", "nan"], "--test-fraction = nan is out of range"),
])
def test_bad_flags(run_meteor, args, needle):
    assert_clean_error(run_meteor(*args, check=False), needle)


# ---- JSONL inputs: one JSON value per line, for every reader --------------------------

@pytest.mark.parametrize("line", ['{"prompt": "a"} {"prompt": "b"}', '{"prompt": "a"} garbage'])
def test_batch_line_with_trailing_text(tiny_gguf, run_meteor, tmp_path, line):
    batch = tmp_path / "batch.jsonl"
    batch.write_text('{"prompt": "ok"}\n' + line + "\n")
    p = run_meteor("generate", "-m", tiny_gguf, "--batch", batch, "-n", 2, "--greedy", "-q",
                   check=False)
    assert_clean_error(p, "batch.jsonl:2: unexpected text after the JSON value")
    assert p.stdout == ""


def distill_args(run, model, questions, *extra):
    return ["distill", "--run", run, "-m", model, "--questions", questions, "--expert-url",
            "http://127.0.0.1:9/v1", "--expert-model", "m", "--no-guideline", "--no-train",
            "--max-retries", "0", "--test-fraction", "0", "--quiet", *extra]


@pytest.mark.parametrize("line", ['{"title": "a"} {"title": "b"}', '{"title": "a"} garbage'])
def test_question_line_with_trailing_text(tiny_gguf, run_meteor, tmp_path, line):
    questions = tmp_path / "q.jsonl"
    questions.write_text(line + "\n")
    p = run_meteor(*distill_args(tmp_path / "run", tiny_gguf, questions), check=False)
    assert_clean_error(p, "q.jsonl:1: unexpected text after the JSON value")


# ---- the API key's variable ----------------------------------------------------------

@pytest.mark.parametrize("given", ["sk-proj-SENTINEL4242abcdefXYZ", "hf_SENTINEL4242abcdefXYZ",
                                   "SENTINEL4242 with spaces"])
def test_api_key_given_for_its_variable_is_never_shown(tiny_gguf, run_meteor, tmp_path, given):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"title": "What is a list?"}\n')
    env = {k: v for k, v in os.environ.items() if k != given}
    p = run_meteor(*distill_args(tmp_path / "run", tiny_gguf, questions, "--api-key-env", given),
                   check=False, env=env)
    assert_clean_error(p, "--api-key-env takes the NAME of an environment variable",
                       "looks like an API key")
    assert "SENTINEL4242" not in p.stderr + p.stdout


# ---- a training checkpoint's numbers ---------------------------------------------------

def rewrite_checkpoint_meta(path, **changes):
    """Rewrites values of a safetensors file's __metadata__ (the header keeps its size class)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"].update(changes)
    text = json.dumps(header).encode()
    # the tensors' offsets are relative to the data, so a longer header only moves it
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])


@pytest.mark.parametrize("changes,needle", [
    ({"step": "-3"}, "step = -3 is out of range"),
    ({"step": "1e999"}, "step expects an integer, got '1e999'"),
    ({"seed": "abc"}, "seed expects a non-negative integer"),
    ({"data_pos": "0:x"}, "data_pos batch expects an integer"),
    ({"data_pos": "-1:0"}, "data_pos epoch = -1 is out of range"),
    ({"data_pos": "7"}, "data_pos = 7 is not EPOCH:BATCH"),
])
def test_checkpoint_numbers_checked(tiny_gguf, run_meteor, tmp_path, changes, needle):
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"answer {i}"}) + "\n"
                            for i in range(4)))
    out = tmp_path / "out"
    args = ["train", "-m", tiny_gguf, "--data", data, "--out", out, "--save-every", "1",
            "--max-steps", "2", "--quiet", "-t", "1", "--lora-rank", "2", "--max-len", "64",
            "--batch-size", "2"]
    killed = run_meteor(*args, check=False,
                        env=dict(os.environ, METEOR_FAULT_KILL="checkpoint_saved:1"))
    assert killed.returncode == -9, killed.stderr
    rewrite_checkpoint_meta(out / "checkpoint.safetensors", **changes)
    p = run_meteor(*args, "--resume", check=False)
    assert_clean_error(p, "checkpoint.safetensors", needle)
