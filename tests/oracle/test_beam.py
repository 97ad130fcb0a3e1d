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
- Several prompts searched together (mt_beam_search_batch, two at a time with refills and
  all at once): each prompt's n-best list equals transformers' and the exhaustive search's
  for it, and, in the fast decoding mode, the one it gets alone bit for bit (tiny models and
  SmolLM2 chat questions); bad prompts are refused up front; the search runs clean under
  ASan, an abort by its callback included.

Known difference, not tested: when K = 2N candidates exceed the vocabulary at the first
step (N > V/2), transformers fills the missing beams with copies of the prompt scored
-1e9 that can later pad its output; meteor runs fewer beams until enough exist.
"""
import itertools
import json
import os
import subprocess
from pathlib import Path

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


# ------------------------------------------- several prompts searched together (issue 17)
#
# mt_beam_search_batch feeds the running beams of up to max_prompts prompts in one forward
# pass per step; a finished prompt's slots go to the next waiting one. Each prompt's
# n-best list must be the one it gets alone. In meteor's fast decoding mode (as `meteor
# generate` and the pipeline decode: 8-bit activations for quantised rows, f32 for float
# rows, f16 KV cache) a row's arithmetic does not depend on the rows beside it, so batched
# equals alone bit for bit. Precise mode multiplies float matrices with the BLAS sgemm on
# CPUs without AVX-512 (OpenBLAS 0.3.21 here), whose result for a row depends on how many
# rows the call has (rows in full 4-row tiles differ from a 1..3-row call in the last
# bits), so there batched and alone agree to rounding: same sequences, scores within a
# tenth of the tolerance against transformers. The precise runs are the ones compared with
# transformers, whose tolerance f16 keys and values would exceed.

BATCH_PROMPTS = [[1, 2, 3, 4], [7, 7], [3, 0, 5, 6, 1, 2], [5], [2, 4, 6, 1, 3, 0, 7], [6, 1]]
# Early-stopping modes and length penalties under which the prompts of BATCH_PROMPTS end at
# different steps on the 8-token model (checked below), so that slots are refilled while
# other prompts still run.
BATCH_SETTINGS = [(False, 1.0), (True, 2.0), ("never", -1.0), (False, 0.5), ("never", 0.7)]


@pytest.fixture(scope="module")
def vocab512(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny512")
    return path, tiny_llama(path, vocab=512, seed=13, layers=3, scale=0.5)


def run_beam_batch(tool, model, prompts, n_beams, max_new, lp=1.0, early=False, stops=None,
                   max_prompts=1, fast=False, alone=False, extra=(), threads=2, check=True):
    """beam_tool --batch: prompts are id lists or {"chat": question} objects."""
    lines = "".join(json.dumps(p if isinstance(p, dict) else {"ids": p}) + "\n" for p in prompts)
    args = [str(tool), "--batch", str(model), str(n_beams), str(max_new), repr(float(lp)),
            EARLY[early], ",".join(map(str, stops)) if stops else "-", str(threads),
            str(max_prompts), *(["--fast"] if fast else []), *(["--alone"] if alone else []),
            *map(str, extra)]
    proc = subprocess.run(args, input=lines, capture_output=True, text=True, timeout=600)
    if not check:
        return proc
    if proc.returncode:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr}", pytrace=False)
    return json.loads(proc.stdout)


def per_prompt(res):
    """What must not depend on batching: every hypothesis field, steps, KV rows copied."""
    return [(r["hyps"], r["n_prompt"], r["n_steps"], r["kv_rows_copied"]) for r in res["results"]]


def assert_batched_like_alone_to_rounding(got, alone, what):
    for i, (g, a) in enumerate(zip(got["results"], alone["results"])):
        assert [full_seq(h) for h in g["hyps"]] == [full_seq(h) for h in a["hyps"]], f"{what}: prompt {i}"
        for hg, ha in zip(g["hyps"], a["hyps"]):
            assert abs(hg["score"] - ha["score"]) <= tol(ha["score"]) / 10, f"{what}: prompt {i}"
            assert abs(hg["sum_logprob"] - ha["sum_logprob"]) <= tol(ha["sum_logprob"]) / 10, \
                f"{what}: prompt {i}"


@pytest.mark.parametrize("early, lp", BATCH_SETTINGS)
def test_batch_equals_alone_fast_mode(beam_tool, small_vocab, vocab512, early, lp):
    """Bit for bit, with 2 prompts at a time (refills) and all 6 at once."""
    for path, stop in ((small_vocab[0], 0), (vocab512[0], 17)):
        what = f"{path.name}, early {early}, lp {lp}"
        alone = run_beam_batch(beam_tool, path, BATCH_PROMPTS, 4, 10, lp, early, [stop],
                               fast=True, alone=True)
        steps = [r["n_steps"] for r in alone["results"]]
        if stop == 0:
            assert len(set(steps)) > 1, f"{what}: every prompt ends at step {steps[0]}"
        for mp in (2, len(BATCH_PROMPTS)):
            got = run_beam_batch(beam_tool, path, BATCH_PROMPTS, 4, 10, lp, early, [stop],
                                 max_prompts=mp, fast=True)
            assert per_prompt(got) == per_prompt(alone), f"{what}, {mp} prompts at a time"
            assert sorted(got["order"]) == list(range(len(BATCH_PROMPTS)))
            st = got["stats"]
            assert st["n_prompts"] == len(BATCH_PROMPTS)
            if mp == len(BATCH_PROMPTS):
                # all prefilled in one pass, then one pass per step until the last one ends
                assert st["n_steps"] == max(steps) - 1, what
            else:
                assert st["n_steps"] > max(steps) - 1, what
            assert st["n_step_tokens"] <= 4 * sum(s - 1 for s in steps), what


@pytest.mark.parametrize("early, lp", BATCH_SETTINGS)
def test_batch_matches_transformers(beam_tool, small_vocab, early, lp):
    """Precise mode: each prompt's n-best list equals transformers' generate(num_beams=4)
    on it, with 2 prompts at a time and with all at once; and equals the prompt searched
    alone (to rounding, see above)."""
    path, model = small_vocab
    want = [hf_beam(model, pr, 4, 10, lp, early, eos=0) for pr in BATCH_PROMPTS]
    alone = run_beam_batch(beam_tool, path, BATCH_PROMPTS, 4, 10, lp, early, [0], alone=True)
    for mp in (2, len(BATCH_PROMPTS)):
        got = run_beam_batch(beam_tool, path, BATCH_PROMPTS, 4, 10, lp, early, [0], max_prompts=mp)
        for pr, res, w in zip(BATCH_PROMPTS, got["results"], want):
            assert_sorted_and_consistent(res, lp)
            assert_nbest_equal([(full_seq(h), h["score"]) for h in res["hyps"]], w,
                               f"prompt {pr}, lp {lp}, early {early}, {mp} at a time")
        assert_batched_like_alone_to_rounding(got, alone, f"lp {lp}, early {early}, {mp} at a time")


@pytest.mark.parametrize("eos", [None, 0])
@pytest.mark.parametrize("lp", [1.0, 2.0])
def test_batch_wide_beams_equal_exhaustive_search(beam_tool, small_vocab, eos, lp):
    """N = V^2 = 64 beams, 3 prompts 2 at a time (128 slots): each prompt's n-best list is
    the exhaustive top 64 of its continuations."""
    path, model = small_vocab
    prompts = BATCH_PROMPTS[:3]
    n_beams = V_SMALL ** (L_SHORT - 1)
    stops = [eos] if eos is not None else None
    got = run_beam_batch(beam_tool, path, prompts, n_beams, L_SHORT, lp, False, stops, max_prompts=2)
    for pr, res in zip(prompts, got["results"]):
        assert_sorted_and_consistent(res, lp)
        want = exhaustive(model, pr, eos, lp)
        assert_nbest_equal([(full_seq(h), h["score"]) for h in res["hyps"]], want[:n_beams],
                           f"prompt {pr}, eos {eos}, lp {lp}")
    fast_alone = run_beam_batch(beam_tool, path, prompts, n_beams, L_SHORT, lp, False, stops,
                                fast=True, alone=True)
    fast = run_beam_batch(beam_tool, path, prompts, n_beams, L_SHORT, lp, False, stops,
                          max_prompts=2, fast=True)
    assert per_prompt(fast) == per_prompt(fast_alone)


SMOLLM_QUESTIONS = ["What is a Python list?", "How do I reverse a string in Python?",
                    "What does the yield keyword do?"]


def test_batch_equals_alone_smollm(beam_tool, smollm_gguf):
    """Three chat questions, fast mode (SmolLM2 Q4_1 rows against 8-bit activations; on CPUs
    with AVX-512 VNNI their packed copies): batched two at a time and all at once give every
    question the hypotheses, texts and scores it gets alone, bit for bit."""
    prompts = [{"chat": q} for q in SMOLLM_QUESTIONS]
    alone = run_beam_batch(beam_tool, smollm_gguf, prompts, 4, 32, fast=True, alone=True)
    print([r["hyps"][0]["text"] for r in alone["results"]])
    assert all(r["hyps"][0]["text"] for r in alone["results"])
    for mp in (2, 3):
        got = run_beam_batch(beam_tool, smollm_gguf, prompts, 4, 32, max_prompts=mp, fast=True)
        assert per_prompt(got) == per_prompt(alone), f"{mp} at a time"


def test_batch_bad_prompts(beam_tool, small_vocab):
    """Every prompt is checked before any is searched; the error names the prompt."""
    path, _ = small_vocab
    for prompts, message in (([[1, 2], [], [3]], "prompt 1: the prompt is empty"),
                             ([[1], [2] * 2048], "prompt 1: prompt of 2048 tokens does not fit "
                                                 "the context of 2048")):
        proc = run_beam_batch(beam_tool, path, prompts, 2, 4, max_prompts=2, check=False)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.strip() == f"beam_tool: {message} (0 results taken)"


@pytest.fixture(scope="session")
def beam_tool_asan(repo_root):
    """beam_tool under AddressSanitizer + UndefinedBehaviorSanitizer (`make asan-bin`)."""
    exe = Path(os.environ.get("METEOR_ASAN_BUILD", repo_root / "build-asan")) / "tools" / "beam_tool"
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: build it with `make asan-bin`", pytrace=False)
    return exe


def test_batch_under_asan(beam_tool_asan, small_vocab):
    """Refills, the fast and precise paths, and a search aborted by its callback, clean under
    ASan/UBSan (any report aborts the tool)."""
    path, _ = small_vocab
    for fast in (False, True):
        alone = run_beam_batch(beam_tool_asan, path, BATCH_PROMPTS, 4, 10, 0.5, False, [0],
                               fast=fast, alone=True)
        got = run_beam_batch(beam_tool_asan, path, BATCH_PROMPTS, 4, 10, 0.5, False, [0],
                             max_prompts=2, fast=fast)
        if fast:
            assert per_prompt(got) == per_prompt(alone)
        else:
            assert_batched_like_alone_to_rounding(got, alone, "ASan, precise")
    proc = run_beam_batch(beam_tool_asan, path, BATCH_PROMPTS, 4, 10, 0.5, False, [0],
                          max_prompts=2, extra=["--abort-after", 3], check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == "beam_tool: aborted by the caller after 3 results (3 results taken)"
