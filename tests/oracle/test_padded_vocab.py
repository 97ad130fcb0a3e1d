"""Models whose embedding has more rows than the tokenizer has tokens (issue 13).

Hugging Face checkpoints pad the embedding (Qwen2.5: 151,936 rows for 151,665 tokens). The
rule (src/infer/vocab.h): a forward pass gives one logit per row; decoding (greedy, sampling,
--batch, beam search) masks the rows past the tokenizer as if their logits were -inf, so
their ids never appear; training keeps every row in the softmax, as transformers does, and
export keeps the shapes. Fewer rows than tokens is refused at load.

The tiny models here have 512 rows and a 400-token byte-level BPE tokenizer, and are built
so that the padded rows' logits are the largest at every position (residual dimension 0 is
held constant through the layers and only the padded head rows read it, with a large
weight): without the mask every decoding path would pick a padded id. The reference for
decoding is transformers on the same weights with the head cut to the tokenizer's 400 rows,
which is exactly "padded logits = -inf". The same model goes through GGUF twice: with a token
list of 400 entries, and as meteor's merged export, whose token list llama.cpp-style pads to
512 with UNUSED "[PADn]" placeholders.
"""
import copy
import json
import subprocess

import gguf
import numpy as np
import peft
import pytest
import torch
import transformers
from tokenizers import Tokenizer

import test_export
from test_beam import assert_nbest_equal, hf_beam
from test_export import add_tokenizer, export_config, hf_to_gguf, llama_cpp_logits
from test_train_grads import compare, make_batch, padded, torch_loss_and_grads

ROWS = 512  # embedding / head rows (export_config's vocab_size)
N_TOK = 400  # tokens of add_tokenizer's BPE
PAD_LOGIT_WEIGHT = 100.0
TOL = 1e-4
PROMPTS = ["How do I copy a list in Python?", "for i in range(10):",
           "What is the difference between a tuple and a list?"]
GEN_ARCHS = ["qwen2", "llama"]  # tied head (Qwen2.5's case) and a separate one


def tool(build_dir, name):
    exe = build_dir / "tools" / name
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: build it with `make`", pytrace=False)
    return exe


def make_padded_rows_win(model):
    """Residual dimension 0 is the same constant for every token at every layer (no attention
    or MLP output writes it), so after the final norm it is positive everywhere; the padded
    head rows read only that dimension, with a large weight, and win every argmax."""
    cfg = model.config
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:N_TOK, 0] = 1.0
        emb[N_TOK:] = 0.0
        emb[N_TOK:, 0] = PAD_LOGIT_WEIGHT * (1 + torch.arange(ROWS - N_TOK) / ROWS)
        if not cfg.tie_word_embeddings:
            head = model.lm_head.weight
            head[N_TOK:] = 0.0
            head[N_TOK:, 0] = PAD_LOGIT_WEIGHT * (1 + torch.arange(ROWS - N_TOK) / ROWS)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0] = 0.0
            layer.mlp.down_proj.weight[0] = 0.0
        # a positive norm gain on dimension 0 (Gemma's norm multiplies by 1 + w)
        model.model.norm.weight[0] = 0.0 if cfg.model_type.startswith("gemma") else 1.0


def make_model(arch, folder, seed):
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(export_config(arch),
                                                          dtype=torch.float32).eval()
    assert model.config.vocab_size == ROWS
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    make_padded_rows_win(model)
    model.save_pretrained(folder)
    add_tokenizer(folder, "qwen2")
    assert Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size() == N_TOK
    return model


def cut_to_tokenizer(model):
    """The same weights with only the tokenizer's rows: transformers decoding with the padded
    logits at -inf (out of every softmax, never chosen)."""
    cfg = copy.deepcopy(model.config)
    cfg.vocab_size = N_TOK
    cut = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    state = {k: (v[:N_TOK] if k in ("model.embed_tokens.weight", "lm_head.weight") else v)
             for k, v in model.state_dict().items()}
    cut.load_state_dict(state)
    return cut


def write_bpe_vocab(folder):
    """test_export's write_vocab for hf_to_gguf: the folder's byte-level BPE as llama.cpp
    writes it, the token list as long as the tokenizer (400), not the embedding (512)."""
    tj = json.loads((folder / "tokenizer.json").read_text())
    tokens, types_ = [None] * N_TOK, [1] * N_TOK
    for text, i in tj["model"]["vocab"].items():
        tokens[i] = text
    for a in tj["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types_[a["id"]] = 3 if a["special"] else 4
    eos = tj["model"]["vocab"]["<|im_end|>"]

    def write(w, _rows):
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen2")
        w.add_token_list(tokens)
        w.add_token_types(types_)
        w.add_token_merges([m if isinstance(m, str) else " ".join(m)
                            for m in tj["model"]["merges"]])
        w.add_eos_token_id(eos)
        w.add_add_bos_token(False)
    return write


@pytest.fixture(scope="module")
def padded_models(tmp_path_factory, build_dir):
    """Per arch: (model, {"folder", "gguf-short", "gguf-placeholders"}), made once."""
    root = tmp_path_factory.mktemp("padded")
    made = {}

    def get(arch):
        if arch not in made:
            folder = root / arch
            model = make_model(arch, folder, {"llama": 21, "qwen2": 22, "gemma3": 23}[arch])
            short = root / f"{arch}-short.gguf"
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(test_export, "write_vocab", write_bpe_vocab(folder))
                hf_to_gguf(model, arch, short)
            placeholders = root / f"{arch}-placeholders.gguf"
            subprocess.run([str(tool(build_dir, "lora_tool")), "merge", folder, placeholders,
                            "f32"], check=True)
            made[arch] = (model, {"folder": folder, "gguf-short": short,
                                  "gguf-placeholders": placeholders})
        return made[arch]

    return get


def prompt_ids(folder, text):
    return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text).ids


def hf_greedy(model, ids, n, eos):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                                                                            dtype=torch.long),
                             max_new_tokens=n, do_sample=False, eos_token_id=eos,
                             pad_token_id=eos)
    gen = out[0, len(ids):].tolist()
    return gen[:gen.index(eos)] if eos in gen else gen


def dump_logits(build_dir, model_path, ids, tmp):
    out = tmp / "logits.f32"
    subprocess.run([str(tool(build_dir, "dump_logits")), str(model_path),
                    ",".join(map(str, ids)), str(out)], check=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def lora_logits(build_dir, model_path, ids, tmp, adapter=None):
    out = tmp / "lora_logits.f32"
    args = [str(tool(build_dir, "lora_tool")), "logits", str(model_path), ",".join(map(str, ids)),
            str(out)] + (["--adapter", str(adapter)] if adapter else [])
    subprocess.run(args, check=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def generate_json(run_meteor, model_path, prompt, *flags):
    return json.loads(run_meteor("generate", "-m", model_path, "-p", prompt, "--json", "-t", 2,
                                 *flags).stdout)


# --- loading and the forward pass --------------------------------------------------------

@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_logits_match_transformers_on_every_row(arch, padded_models, build_dir, tmp_path):
    model, files = padded_models(arch)
    ids = np.random.default_rng(5).integers(0, N_TOK, 24).tolist()
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    assert ref.shape == (24, ROWS)
    # the construction works: unmasked, every position would pick a padded row
    assert (ref.argmax(-1) >= N_TOK).all()
    assert ref[:, N_TOK:].min() > ref[:, :N_TOK].max() + 10
    for src in ("folder", "gguf-short", "gguf-placeholders"):
        got = dump_logits(build_dir, files[src], ids, tmp_path)
        diff = np.abs(got - ref).max()
        print(f"{arch} {src}: max|diff| vs transformers over all {ROWS} rows {diff:.2e}")
        assert got.shape == ref.shape and diff <= TOL


def test_info_names_the_padded_rows(padded_models, run_meteor):
    _, files = padded_models("qwen2")
    for src in ("folder", "gguf-short", "gguf-placeholders"):
        out = run_meteor("info", files[src]).stdout
        assert f"vocabulary:     {ROWS} ({ROWS - N_TOK} padded rows past the tokenizer's " \
               f"{N_TOK} tokens, never generated)" in out, out
        assert f", {N_TOK} tokens" in out, out


# --- decoding never yields a padded id ---------------------------------------------------

SOURCES = ["folder", "gguf-short", "gguf-placeholders"]


@pytest.mark.parametrize("arch", GEN_ARCHS)
@pytest.mark.parametrize("src", SOURCES)
def test_greedy_is_transformers_with_the_padded_rows_masked(arch, src, padded_models,
                                                            run_meteor):
    model, files = padded_models(arch)
    cut = cut_to_tokenizer(model)
    eos = Tokenizer.from_file(str(files["folder"] / "tokenizer.json")).token_to_id("<|im_end|>")
    for prompt in PROMPTS:
        ids = prompt_ids(files["folder"], prompt)
        want = hf_greedy(cut, ids, 12, eos)
        precise = generate_json(run_meteor, files[src], prompt, "--greedy", "--precise", "-n", 12)
        fast = generate_json(run_meteor, files[src], prompt, "--greedy", "-n", 12)
        print(f"{arch} {src} {prompt!r}: transformers (masked) {want}, meteor {precise['tokens']}")
        assert precise["prompt_tokens"] == len(ids)
        assert precise["tokens"] == want
        assert all(0 <= t < N_TOK for t in fast["tokens"])


@pytest.mark.parametrize("arch", GEN_ARCHS)
@pytest.mark.parametrize("src", SOURCES)
def test_sampling_never_yields_a_padded_id(arch, src, padded_models, run_meteor):
    _, files = padded_models(arch)
    seen = set()
    for seed in range(6):
        # the whole distribution: no top-k / top-p cut that could hide a padded id. A seed
        # may draw an end-of-turn token first (a raw prompt stops on them too): no tokens.
        out = generate_json(run_meteor, files[src], PROMPTS[0], "--temperature", "1.5",
                            "--top-k", 0, "--top-p", 1, "--seed", seed, "-n", 24)
        assert all(0 <= t < N_TOK for t in out["tokens"]), out["tokens"]
        seen.update(out["tokens"])
    assert len(seen) > 10  # sampled, not stuck on one token


@pytest.mark.parametrize("arch", GEN_ARCHS)
@pytest.mark.parametrize("src", SOURCES)
def test_batch_equals_single_and_never_yields_a_padded_id(arch, src, padded_models, run_meteor,
                                                          tmp_path):
    _, files = padded_models(arch)
    batch = tmp_path / "prompts.jsonl"
    batch.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    out = run_meteor("generate", "-m", files[src], "--batch", batch, "--greedy", "--precise",
                     "-n", 12, "-q", "-t", 2).stdout
    got = [json.loads(line)["tokens"] for line in out.splitlines()]
    single = [generate_json(run_meteor, files[src], p, "--greedy", "--precise", "-n", 12)["tokens"]
              for p in PROMPTS]
    assert got == single
    assert all(0 <= t < N_TOK for toks in got for t in toks)
    sampled = run_meteor("generate", "-m", files[src], "--batch", batch, "--temperature", "1.5",
                         "--top-k", 0, "--top-p", 1, "-n", 16, "-q", "-t", 2).stdout
    for line in sampled.splitlines():
        toks = json.loads(line)["tokens"]
        assert toks and all(0 <= t < N_TOK for t in toks), toks


@pytest.mark.parametrize("arch", GEN_ARCHS)
@pytest.mark.parametrize("src", SOURCES)
def test_beam_search_is_transformers_with_the_padded_rows_masked(arch, src, padded_models,
                                                                 run_meteor):
    model, files = padded_models(arch)
    cut = cut_to_tokenizer(model)
    eos = Tokenizer.from_file(str(files["folder"] / "tokenizer.json")).token_to_id("<|im_end|>")
    for prompt in PROMPTS[:2]:
        ids = prompt_ids(files["folder"], prompt)
        want = hf_beam(cut, ids, 4, 6, 1.0, False, eos)
        out = generate_json(run_meteor, files[src], prompt, "--beams", 4, "--n-best", 4,
                            "--precise", "-n", 6)
        got = [(h["tokens"] + ([eos] if h["stop"] == "eos" else []), h["score"])
               for h in out["n_best"]]
        print(f"{arch} {src} {prompt!r}: meteor {got}\n  transformers (masked) {want}")
        assert all(0 <= t < N_TOK for seq, _ in got for t in seq)
        assert_nbest_equal(got, want, f"{arch} {src} {prompt!r}")


# --- training and export -----------------------------------------------------------------

@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_train_gradients_keep_padded_rows_in_the_softmax(arch, mode, padded_models, build_dir,
                                                         tmp_path):
    """As test_train_grads, on a padded model: targets are tokenizer ids; the loss's
    softmax runs over all 512 rows in both (transformers' loss), so loss and every gradient
    (with --full the padded head/embedding rows' too) agree."""
    model, files = padded_models(arch)
    model = copy.deepcopy(model).train()
    seqs, labels = make_batch(N_TOK, 9)
    flags = ["--full"]
    if mode == "lora":
        cfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                              target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                              "gate_proj", "up_proj", "down_proj"])
        model = peft.get_peft_model(model, cfg)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_" in n:
                    p.copy_(torch.randn_like(p) * 0.2)
        model.save_pretrained(tmp_path / "adapter")
        flags = ["--adapter", tmp_path / "adapter"]
    ref_loss, ref = torch_loss_and_grads(model, seqs, labels)
    ref = {n.replace(".default", ""): g for n, g in ref.items()}
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"input_ids": seqs, "labels": labels}))
    res = json.loads(subprocess.run([str(tool(build_dir, "train_grads")), str(files["folder"]),
                                     str(spec), *map(str, flags)], check=True,
                                    capture_output=True, text=True).stdout)
    ours = {k: np.array(v, dtype=np.float64) for k, v in res["grads"].items()}
    # the padded rows hold real probability mass here, so leaving them out would show
    with torch.no_grad():
        ids, mask, lab = padded(seqs, labels)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        lab = lab[:, 1:]
        keep = lab != -100
        cut_loss = torch.nn.functional.cross_entropy(logits[..., :N_TOK][keep], lab[keep]).item()
    print(f"{arch} {mode}: loss {res['loss']:.6f} vs transformers {ref_loss:.6f} (softmax over "
          f"the tokenizer's rows only: {cut_loss:.6f})")
    assert abs(cut_loss - ref_loss) > 1e-3
    assert abs(res["loss"] - ref_loss) <= 1e-5 * max(1.0, abs(ref_loss))
    if mode == "full":
        assert ours["model.embed_tokens.weight"].size == ROWS * model.config.hidden_size
    compare(ours, ref, ref.keys())


def right_padded(seqs, labels):
    T = max(map(len, seqs))
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    lab = torch.full((len(seqs), T), -100, dtype=torch.long)
    for i, (s, l) in enumerate(zip(seqs, labels)):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
        lab[i, :len(l)] = torch.tensor(l)
    return ids, mask, lab


TRAIN_ROWS = [{"question": "How do I copy a list?", "answer": "Use list(x) or x[:]."},
              {"question": "What is a tuple?", "answer": "Tuples are immutable lists."},
              {"question": "Why are defaults shared?", "answer": "They are evaluated once."},
              {"question": "How do I print digits?", "answer": "for i in range(10): print(i)"}]


@pytest.mark.parametrize("arch", GEN_ARCHS)
def test_train_then_export_peft_and_merged(arch, padded_models, build_dir, run_meteor, tmp_path):
    """`meteor train` (LoRA SFT, one batch of all four examples per step): step 1's loss is
    transformers' on the same tokens (LoRA B starts at zero); the PEFT export loads in peft
    with meteor's logits, the GGUF-LoRA one in llama.cpp; the merged GGUF keeps the 512-row
    shapes, gives the same logits and generates the same tokens, none of them padded."""
    model, files = padded_models(arch)
    folder = files["folder"]
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in TRAIN_ROWS))
    out = tmp_path / "run"
    run_meteor("train", "-m", folder, "--data", data, "--out", out, "--batch-size", 4,
               "--max-steps", 3, "--lora-rank", 4, "--lora-alpha", 8, "--lr", "2e-3",
               "--schedule", "constant", "--seed", 3, "-t", 2, "-q")
    metrics = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 3

    dump = json.loads(subprocess.run([str(tool(build_dir, "data_dump")), str(folder), str(data)],
                                     check=True, capture_output=True, text=True).stdout)
    seqs = [e["tokens"] for e in dump["examples"]]
    labels = [[t if m else -100 for t, m in zip(e["tokens"], e["mask"])]
              for e in dump["examples"]]
    assert all(0 <= t < N_TOK for s in seqs for t in s)
    ids, mask, lab = right_padded(seqs, labels)
    with torch.no_grad():
        ref_loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss.item()
    print(f"{arch}: meteor train losses {[m['loss'] for m in metrics]}, step 1 vs transformers "
          f"{ref_loss:.6f}")
    assert abs(metrics[0]["loss"] - ref_loss) <= 1e-4 * max(1.0, ref_loss)
    assert metrics[-1]["loss"] < metrics[0]["loss"]

    # PEFT export, read by peft on the transformers model
    peft_dir = tmp_path / "peft"
    run_meteor("export", "-m", folder, "--adapter", out / "adapter", "--out", peft_dir)
    ids = np.random.default_rng(4).integers(0, N_TOK, 16).tolist()
    ours = lora_logits(build_dir, folder, ids, tmp_path, adapter=peft_dir)
    pm = peft.PeftModel.from_pretrained(copy.deepcopy(model), str(peft_dir)).eval()
    with torch.no_grad():
        theirs = pm(torch.tensor([ids])).logits[0].numpy()
        base = model(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(theirs - base).max() > 1e-3  # training moved the model
    assert ours.shape == (16, ROWS) and np.abs(ours - theirs).max() <= TOL

    # GGUF-LoRA export: llama.cpp runs it on a GGUF of the padded base as meteor does
    lora = tmp_path / "lora.gguf"
    run_meteor("export", "-m", folder, "--adapter", out / "adapter", "--format", "gguf-lora",
               "--out", lora)
    theirs = llama_cpp_logits(files["gguf-placeholders"], ids, lora)
    print(f"{arch}: llama.cpp + GGUF-LoRA vs meteor + adapter max|diff| "
          f"{np.abs(theirs - ours).max():.2e}")
    assert theirs.shape == ours.shape and np.abs(theirs - ours).max() <= TOL

    # merged GGUF: shapes as they were, placeholders for the padded rows
    merged = tmp_path / "merged.gguf"
    run_meteor("export", "-m", folder, "--adapter", out / "adapter", "--merge", "--type", "f32",
               "--out", merged)
    r = gguf.GGUFReader(str(merged))
    shapes = {t.name: list(t.shape) for t in r.tensors}
    d = model.config.hidden_size
    assert shapes["token_embd.weight"] == [d, ROWS]
    assert ("output.weight" in shapes) == (not model.config.tie_word_embeddings)
    if "output.weight" in shapes:
        assert shapes["output.weight"] == [d, ROWS]
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    assert len(tokens) == ROWS and tokens[N_TOK:] == [f"[PAD{i}]" for i in range(N_TOK, ROWS)]
    got = dump_logits(build_dir, merged, ids, tmp_path)
    assert np.abs(got - ours).max() <= TOL
    assert (got.argmax(-1) >= N_TOK).all()  # unmasked, the padded rows would still win
    for prompt in PROMPTS[:2]:
        a = generate_json(run_meteor, merged, prompt, "--greedy", "--precise", "-n", 10)
        b = generate_json(run_meteor, folder, prompt, "--greedy", "--precise", "-n", 10,
                          "--adapter", peft_dir)
        assert a["tokens"] == b["tokens"] and all(0 <= t < N_TOK for t in a["tokens"])


# --- fewer rows than tokens --------------------------------------------------------------

def test_fewer_rows_than_tokens_is_refused_at_load(run_meteor, tmp_path):
    torch.manual_seed(31)
    cfg = export_config("qwen2")
    cfg.vocab_size = 300  # the tokenizer has 400
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(tmp_path / "small")
    add_tokenizer(tmp_path / "small", "qwen2")
    data = tmp_path / "sft.jsonl"
    data.write_text(json.dumps(TRAIN_ROWS[0]) + "\n")
    for args in (["generate", "-m", tmp_path / "small", "-p", "hi", "-n", 4],
                 ["generate", "-m", tmp_path / "small", "-p", "hi", "-n", 4, "--beams", 2],
                 ["info", tmp_path / "small"],
                 ["train", "-m", tmp_path / "small", "--data", data, "--out", tmp_path / "o"]):
        p = run_meteor(*args, check=False)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1, p.stderr
        assert len(lines) == 1 and lines[0].startswith("meteor: error:"), p.stderr
        assert "the model's embedding has 300 rows, fewer than the tokenizer's 400 tokens" \
            in lines[0], lines[0]
