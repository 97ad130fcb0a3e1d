"""Beam search (src/infer/beam.c) against greedy decoding, exhaustive search and transformers.

- N=1 is greedy decoding: on a tiny random llama (argmax chain of dump_logits) and on
  SmolLM2 (`meteor generate --greedy`).
- On a tiny llama with an 8-token vocabulary and outputs of at most 3 tokens, N = 64 = V^2
  beams make beam search exact: its n-best list equals the best of all continuations
  scored in PyTorch (sum of log-probs / length^length_penalty, a stop token ending a
  hypothesis and counting in its length).
- With N=4 the n-best list (sequences and scores) equals transformers'
  generate(num_beams=4, do_sample=False, length_penalty, early_stopping) on the same
  weights, for each early-stopping mode and several length penalties; also on SmolLM2.
- Every n-best list is sorted, and each hypothesis' sum of log-probs recomputed from
  dump_logits' logits agrees with the reported one.

Known difference, not tested: when K = 2N candidates exceed the vocabulary at the first
step (N > V/2), transformers fills the missing beams with copies of the prompt scored
-1e9 that can later pad its output; meteor runs fewer beams until enough exist.
"""
import itertools
import json
import subprocess

import numpy as np
import pytest
import torch
import transformers

LOGPROB_TOL = 1e-4  # logits agree with transformers to 1e-4 (test_logits_parity)


def tol(score):
    """float32 log-probs of unlikely tokens carry a relative error: -20 is good to ~1e-4."""
    return LOGPROB_TOL + 2e-5 * abs(score)
EARLY = {False: "0", True: "1", "never": "never"}


@pytest.fixture(scope="session")
def beam_tool(build_dir):
    exe = build_dir / "tools" / "beam_tool"
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: build it with `make`", pytrace=False)
    return exe


@pytest.fixture(scope="session")
def dump_logits(build_dir):
    exe = build_dir / "tools" / "dump_logits"
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: build it with `make`", pytrace=False)
    return exe


def run_beam(tool, model, prompt, n_beams, max_new, lp=1.0, early=False, stops=None, threads=2):
    args = [str(tool), str(model), ",".join(map(str, prompt)), str(n_beams), str(max_new),
            repr(float(lp)), EARLY[early], ",".join(map(str, stops)) if stops else "-", str(threads)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr}", pytrace=False)
    return json.loads(proc.stdout)


def full_seq(h):
    """A hypothesis' generated tokens with the stop token that ended it."""
    return h["tokens"] + ([h["stop_token"]] if h["stop_token"] >= 0 else [])


def meteor_logprobs(dump, model, ids, tmp_path):
    out = tmp_path / "logits.f32"
    subprocess.run([str(dump), str(model), ",".join(map(str, ids)), str(out), str(len(ids)), "2"],
                   check=True)
    logits = torch.from_numpy(np.fromfile(out, dtype=np.float32).reshape(len(ids), -1))
    return torch.log_softmax(logits.double(), dim=-1)


def tiny_llama(path, vocab, seed, layers=2, scale=1.0):
    """A random llama; a large perturbation gives peaked distributions, so stop tokens are
    chosen and scores are far apart."""
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=48, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, num_hidden_layers=layers, rms_norm_eps=1e-6,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    model.save_pretrained(path)
    return model


def hf_beam(model, prompt, n_beams, max_new, lp, early, eos):
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=max_new, num_beams=n_beams, do_sample=False, length_penalty=lp,
            early_stopping=early, num_return_sequences=n_beams, return_dict_in_generate=True,
            output_scores=True, eos_token_id=eos, pad_token_id=eos if eos is not None else 0)
    # beam_indices holds one entry per generated token (stop token included), -1 after.
    lens = (out.beam_indices + 1).bool().sum(1).tolist()
    return [(out.sequences[i, len(prompt):len(prompt) + lens[i]].tolist(),
             float(out.sequences_scores[i])) for i in range(n_beams)]


def assert_nbest_equal(got, want, what):
    """Same sequences in the same order and scores within tolerance; near-ties (scores
    closer than the tolerance) may come in either order."""
    assert len(got) == len(want), what
    for i, ((gs, gsc), (ws, wsc)) in enumerate(zip(got, want)):
        assert abs(gsc - wsc) <= tol(wsc), f"{what}: score {i}: {gsc} vs {wsc}"
        tied = any(abs(wsc - want[j][1]) <= 2 * tol(wsc) for j in (i - 1, i + 1) if 0 <= j < len(want))
        if not tied:
            assert gs == ws, f"{what}: hypothesis {i}: {gs} vs {ws}"
    assert sorted(map(tuple, (s for s, _ in got))) == sorted(map(tuple, (s for s, _ in want))), what


def assert_sorted_and_consistent(res, lp):
    scores = [h["score"] for h in res["hyps"]]
    assert scores == sorted(scores, reverse=True)
    for h in res["hyps"]:
        assert h["length"] == len(full_seq(h))
        assert h["score"] == pytest.approx(h["sum_logprob"] / h["length"] ** lp, rel=1e-6)  # lp is a float in C


# ---------------------------------------------------------------- (a) N = 1 is greedy

def test_one_beam_is_greedy_tiny(beam_tool, dump_logits, tmp_path):
    """The argmax chain of dump_logits (one full forward pass per token) is greedy decoding."""
    tiny_llama(tmp_path / "m", vocab=512, seed=11, layers=3, scale=0.3)
    prompt = [5, 77, 300, 12, 9]
    n_new = 16
    res = run_beam(beam_tool, tmp_path / "m", prompt, 1, n_new)
    ids = list(prompt)
    for _ in range(n_new):
        ids.append(int(meteor_logprobs(dump_logits, tmp_path / "m", ids, tmp_path)[-1].argmax()))
    assert len(res["hyps"]) == 1
    assert res["hyps"][0]["tokens"] == ids[len(prompt):]
    assert res["kv_rows_copied"] == 0


@pytest.mark.parametrize("prompt", ["The Python programming language was created by",
                                    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"])
def test_one_beam_is_greedy_smollm(beam_tool, run_meteor, smollm_gguf, prompt):
    # beam_tool computes in f32 like dump_logits, so generate runs --precise too.
    greedy = json.loads(run_meteor("generate", "-m", smollm_gguf, "-p", prompt, "--greedy", "-n", 32,
                                   "-t", 2, "--precise", "--json").stdout)
    ids = [int(line.split("\t")[0]) for line in
           run_meteor("tokenize", "-m", smollm_gguf, "-p", prompt).stdout.splitlines()]
    assert len(ids) == greedy["prompt_tokens"]
    res = run_beam(beam_tool, smollm_gguf, ids, 1, 32)
    h = res["hyps"][0]
    assert h["tokens"] == greedy["tokens"]
    assert h["text"] == greedy["text"]


# ------------------------------------------- (b) exhaustive search and transformers' generate

V_SMALL, L_SHORT = 8, 3


def exhaustive(model, prompt, eos, lp):
    """Every hypothesis of at most L_SHORT tokens (a stop token ends it early), scored as
    transformers scores finished beams; best first."""
    seqs = []
    for n in range(1, L_SHORT + 1):
        for s in itertools.product(range(V_SMALL), repeat=n):
            if eos is not None and eos in s[:-1]:
                continue
            if n < L_SHORT and s[-1] != eos:
                continue
            seqs.append(list(s))
    with torch.no_grad():
        lp_all = {}
        for s in seqs:
            for i in range(len(s)):
                key = tuple(s[:i])
                if key not in lp_all:
                    logits = model(torch.tensor([prompt + list(key)])).logits[0, -1].double()
                    lp_all[key] = torch.log_softmax(logits, -1)
        scored = []
        for s in seqs:
            total = sum(float(lp_all[tuple(s[:i])][t]) for i, t in enumerate(s))
            scored.append((s, total / len(s) ** lp))
    scored.sort(key=lambda x: -x[1])
    return scored


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny8")
    return path, tiny_llama(path, vocab=V_SMALL, seed=5)


@pytest.mark.parametrize("eos", [None, 0])
@pytest.mark.parametrize("lp", [1.0, 0.0, 2.0, -0.5])
def test_wide_beam_equals_exhaustive_search(beam_tool, small_vocab, eos, lp):
    path, model = small_vocab
    prompt = [1, 2, 3, 4]
    n_beams = V_SMALL ** (L_SHORT - 1)
    res = run_beam(beam_tool, path, prompt, n_beams, L_SHORT, lp=lp, stops=[eos] if eos is not None else None)
    assert_sorted_and_consistent(res, lp)
    want = exhaustive(model, prompt, eos, lp)
    got = [(full_seq(h), h["score"]) for h in res["hyps"]]
    print(f"eos {eos}, lp {lp}: best {got[0]} (exhaustive {want[0]}), {len(want)} hypotheses")
    assert got[0][0] == want[0][0]
    # With N >= V^(L-1) every hypothesis is ranked, so the whole list is the exhaustive top N.
    assert_nbest_equal(got, want[:n_beams], f"eos {eos}, lp {lp}")


@pytest.mark.parametrize("early", [False, True, "never"])
@pytest.mark.parametrize("lp", [1.0, 0.5, 2.0, -1.0])
@pytest.mark.parametrize("prompt", [[1, 2, 3, 4], [7, 7], [3, 0, 5, 6, 1, 2]])
def test_four_beams_match_transformers(beam_tool, small_vocab, prompt, lp, early):
    path, model = small_vocab
    got = run_beam(beam_tool, path, prompt, 4, 10, lp=lp, early=early, stops=[0])
    assert_sorted_and_consistent(got, lp)
    want = hf_beam(model, prompt, 4, 10, lp, early, eos=0)
    assert_nbest_equal([(full_seq(h), h["score"]) for h in got["hyps"]], want,
                       f"prompt {prompt}, lp {lp}, early {early}")


def test_four_beams_match_transformers_short(beam_tool, small_vocab):
    """The 3-token case of the exhaustive test, with N=4 and no stop token."""
    path, model = small_vocab
    for lp in (1.0, 2.0):
        got = run_beam(beam_tool, path, [1, 2, 3, 4], 4, L_SHORT, lp=lp)
        want = hf_beam(model, [1, 2, 3, 4], 4, L_SHORT, lp, False, eos=None)
        assert_nbest_equal([(full_seq(h), h["score"]) for h in got["hyps"]], want, f"lp {lp}")


def test_larger_vocab_matches_transformers(beam_tool, tmp_path):
    """512 tokens, 3 layers, 12 new tokens: beams diverge and re-merge, so the KV slots are
    copied and reused many times."""
    model = tiny_llama(tmp_path / "m", vocab=512, seed=13, layers=3, scale=0.5)
    prompt = [5, 77, 300, 12, 9, 401]
    for n_beams, lp in ((4, 1.0), (6, 0.7)):
        got = run_beam(beam_tool, tmp_path / "m", prompt, n_beams, 12, lp=lp, stops=[17])
        assert got["kv_rows_copied"] > 0
        want = hf_beam(model, prompt, n_beams, 12, lp, False, eos=17)
        assert_nbest_equal([(full_seq(h), h["score"]) for h in got["hyps"]], want, f"N {n_beams}")


def test_smollm_four_beams_match_transformers(beam_tool, smollm_gguf, hf_gguf):
    model, tok = hf_gguf(smollm_gguf)
    ids = tok("The Python programming language was created by")["input_ids"]
    got = run_beam(beam_tool, smollm_gguf, ids, 4, 16)
    want = hf_beam(model, ids, 4, 16, 1.0, False, eos=tok.eos_token_id)
    print([h["text"] for h in got["hyps"]])
    assert_nbest_equal([(full_seq(h), h["score"]) for h in got["hyps"]], want, "SmolLM2")
    assert got["hyps"][0]["text"] == tok.decode(got["hyps"][0]["tokens"], skip_special_tokens=True)


# ------------------------------------------------ (c) sorted n-best, consistent scores

@pytest.mark.parametrize("lp", [1.0, 0.0])
def test_nbest_scores_recomputed_smollm(beam_tool, dump_logits, smollm_gguf, tmp_path, lp):
    ids = [504, 5905, 6256, 1789, 436, 2312, 411]  # "The Python programming language was created by"
    res = run_beam(beam_tool, smollm_gguf, ids, 4, 16, lp=lp)
    assert len(res["hyps"]) == 4
    assert_sorted_and_consistent(res, lp)
    for h in res["hyps"]:
        seq = full_seq(h)
        lps = meteor_logprobs(dump_logits, smollm_gguf, ids + seq, tmp_path)
        total = sum(float(lps[len(ids) - 1 + i, t]) for i, t in enumerate(seq))
        assert h["sum_logprob"] == pytest.approx(total, abs=1e-3)


def test_nbest_scores_recomputed_tiny(beam_tool, dump_logits, small_vocab, tmp_path):
    path, _ = small_vocab
    prompt = [3, 0, 5, 6, 1, 2]
    res = run_beam(beam_tool, path, prompt, 5, 10, lp=0.8, stops=[0])
    assert_sorted_and_consistent(res, 0.8)
    assert any(h["stop"] == "eos" for h in res["hyps"])
    for h in res["hyps"]:
        seq = full_seq(h)
        lps = meteor_logprobs(dump_logits, path, prompt + seq, tmp_path)
        total = sum(float(lps[len(prompt) - 1 + i, t]) for i, t in enumerate(seq))
        assert h["sum_logprob"] == pytest.approx(total, abs=LOGPROB_TOL)


# ------------------------------------------------------------------- meteor generate --beams

PROMPT = "The Python programming language was created by"
CHAT_QUESTION = "How do I read a file line by line in Python?"


def test_cli_one_beam_is_greedy(run_meteor, smollm_gguf):
    """In the default (fast, 8-bit activation) decoding mode of generate."""
    greedy = json.loads(run_meteor("generate", "-m", smollm_gguf, "-p", CHAT_QUESTION, "--chat",
                                   "--greedy", "-n", 24, "-t", 2, "--json").stdout)
    beam = json.loads(run_meteor("generate", "-m", smollm_gguf, "-p", CHAT_QUESTION, "--chat",
                                 "--beams", 1, "-n", 24, "-t", 2, "--json").stdout)
    assert beam["tokens"] == greedy["tokens"]
    assert beam["text"] == greedy["text"]
    assert beam["prompt_tokens"] == greedy["prompt_tokens"]


def test_cli_nbest_equals_library(run_meteor, beam_tool, smollm_gguf):
    out = run_meteor("generate", "-m", smollm_gguf, "-p", PROMPT, "--beams", 4, "--n-best", 4,
                     "--length-penalty", 0.5, "-n", 12, "-t", 2, "--precise", "--json")
    got = json.loads(out.stdout)
    ids = [504, 5905, 6256, 1789, 436, 2312, 411]
    lib = run_beam(beam_tool, smollm_gguf, ids, 4, 12, lp=0.5)
    assert got["prompt_tokens"] == len(ids)
    assert [h["tokens"] for h in got["n_best"]] == [h["tokens"] for h in lib["hyps"]]
    assert [h["text"] for h in got["n_best"]] == [h["text"] for h in lib["hyps"]]
    assert [h["score"] for h in got["n_best"]] == pytest.approx([h["score"] for h in lib["hyps"]], abs=1e-9)
    assert got["tokens"] == got["n_best"][0]["tokens"] and got["text"] == got["n_best"][0]["text"]
    plain = run_meteor("generate", "-m", smollm_gguf, "-p", PROMPT, "--beams", 4, "--length-penalty", 0.5,
                       "-n", 12, "-t", 2, "--precise").stdout
    assert plain == got["text"] + "\n"


def test_cli_chat_beams_match_transformers(run_meteor, smollm_gguf, hf_gguf):
    """A chat reply: <|im_end|> (SmolLM2's EOS) ends hypotheses, so the early-stopping
    heuristic decides when the search is over."""
    model, tok = hf_gguf(smollm_gguf)
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 2? Answer briefly."}],
                                   tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    for early in (False, True):
        args = ["generate", "-m", smollm_gguf, "-p", "What is 2 + 2? Answer briefly.", "--chat",
                "--beams", 4, "--n-best", 4, "-n", 40, "-t", 2, "--precise", "--json"]
        got = json.loads(run_meteor(*args, *(["--early-stopping"] if early else [])).stdout)
        assert got["prompt_tokens"] == len(ids)
        want = hf_beam(model, ids, 4, 40, 1.0, early, eos=tok.eos_token_id)
        mine = [(h["tokens"] + ([tok.eos_token_id] if h["stop"] == "eos" else []), h["score"])
                for h in got["n_best"]]
        print(early, got["steps"], [h["text"] for h in got["n_best"]])
        assert any(h["stop"] == "eos" for h in got["n_best"])
        assert_nbest_equal(mine, want, f"early {early}")


def test_cli_stop_string_ends_hypothesis(run_meteor, smollm_gguf):
    got = json.loads(run_meteor("generate", "-m", smollm_gguf, "-p", PROMPT, "--beams", 3, "--n-best", 3,
                                "--stop", " in", "-n", 16, "-t", 2, "--json").stdout)
    for h in got["n_best"]:
        assert " in" not in h["text"]
        if h["stop"] == "stop string":
            assert " in" not in h["text"] and len(h["tokens"]) == h["length"]
    assert any(h["stop"] == "stop string" for h in got["n_best"])


@pytest.mark.parametrize("args, message", [
    (["--beams", 2, "--n-best", 3], "--n-best must be in 1..2"),
    (["--beams", 0, "--n-best", 2], None),  # --beams 0 is plain generation; n-best unused
    (["--beams", -1], "--beams = -1 is out of range"),
    (["--beams", 2, "--repeat-penalty", 1.1], "--repeat-penalty is not supported with --beams"),
    (["--beams", 2, "--batch", "x.jsonl"], "--beams does not combine with --batch"),
])
def test_cli_beam_errors(run_meteor, smollm_gguf, args, message):
    base = ["generate", "-m", smollm_gguf, "-n", 2, "-t", 2, "--greedy"]
    if "--batch" not in args:
        base += ["-p", "hi"]
    proc = run_meteor(*base, *args, check=False)
    if message is None:
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
