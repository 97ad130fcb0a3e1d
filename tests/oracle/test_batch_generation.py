"""Batched generation (continuous batching over KV slots) gives every sequence the same
greedy tokens as generating it alone, with fewer slots than prompts so slots are reused."""
import json
import re

import pytest

PROMPTS = [
    "What is a Python list?",
    "How do I reverse a string in Python?",
    "Name a prime number.",
    "What does the len() function do?",
    "Why are Python strings immutable?",
    "How do I read a file line by line?",
]
N = 20


@pytest.mark.parametrize("model", ["smollm_gguf", "gemma_gguf"])
def test_batch_equals_single(model, request, run_meteor, tmp_path):
    gguf = request.getfixturevalue(model)
    batch = tmp_path / "prompts.jsonl"
    batch.write_text("".join(json.dumps({"prompt": p, "id": i}) + "\n" for i, p in enumerate(PROMPTS)))
    out = run_meteor("generate", "-m", gguf, "--batch", batch, "--chat", "--greedy", "-n", N,
                     "--slots", 4, timeout=1200).stdout.splitlines()
    got = [json.loads(l) for l in out]
    assert [g["index"] for g in got] == list(range(len(PROMPTS)))
    assert [g["id"] for g in got] == list(range(len(PROMPTS)))
    for i, p in enumerate(PROMPTS):
        single = json.loads(run_meteor("generate", "-m", gguf, "-p", p, "--chat", "--greedy", "-n", N,
                                       "--json", timeout=600).stdout)
        assert got[i]["tokens"] == single["tokens"], p
        assert got[i]["text"] == single["text"]


def test_batch_many_slots_equals_single(run_meteor, smollm_gguf, tmp_path):
    """Nine sequences decoded together in nine slots (more attention tasks than with four,
    each reading its own head's block of the cache): still the tokens of generating alone."""
    prompts = PROMPTS + ["What is a tuple?", "How do I sort a dict by value?", "What is PEP 8?"]
    batch = tmp_path / "many.jsonl"
    batch.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    out = run_meteor("generate", "-m", smollm_gguf, "--batch", batch, "--chat", "--greedy", "-n",
                     N, "--slots", len(prompts), timeout=1200).stdout.splitlines()
    got = [json.loads(l) for l in out]
    for i, p in enumerate(prompts):
        single = json.loads(run_meteor("generate", "-m", smollm_gguf, "-p", p, "--chat", "--greedy",
                                       "-n", N, "--json", timeout=600).stdout)
        assert got[i]["tokens"] == single["tokens"], p


@pytest.mark.parametrize("impl", ["avx2", "avx512"])
def test_batch_short_prompts_equal_single(impl, run_meteor, smollm_gguf, tmp_path):
    """Prompts of a few tokens: alone each is a pass of under 16 tokens, admitted together
    one of more. With every kernel implementation (METEOR_QDOT; AVX2 is what a CPU without
    AVX-512 runs) the weights take the same path for both, so the same tokens; 17
    sequences also make decoding steps of more than 16 tokens."""
    import os
    env = dict(os.environ, METEOR_QDOT=impl)
    prompts = ["def add(a, b):", "The capital of France is", "import numpy as", "1, 2, 3, 4,",
               "Hello", "for i in range(", "A list in Python", "x = [", "print(", "The sky is",
               "class Dog:", "while True:", "# sort a list", "SELECT * FROM", "One, two,",
               "import os", "The best way to"]
    batch = tmp_path / "short.jsonl"
    batch.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    out = run_meteor("generate", "-m", smollm_gguf, "--batch", batch, "--greedy", "-n", 8,
                     "--slots", len(prompts), env=env, timeout=1200).stdout.splitlines()
    got = [json.loads(l) for l in out]
    assert max(g["prompt_tokens"] for g in got) < 16
    for i, p in enumerate(prompts):
        single = json.loads(run_meteor("generate", "-m", smollm_gguf, "-p", p, "--greedy", "-n", 8,
                                       "--json", env=env, timeout=600).stdout)
        assert got[i]["tokens"] == single["tokens"], p


def test_batch_bad_lines(run_meteor, smollm_gguf, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"nothing": 1}\n')
    p = run_meteor("generate", "-m", smollm_gguf, "--batch", bad, check=False)
    assert p.returncode != 0 and "bad.jsonl:2" in p.stderr
    bad.write_text('{"prompt": "ok"}\nnot json\n')
    p = run_meteor("generate", "-m", smollm_gguf, "--batch", bad, check=False)
    assert p.returncode != 0 and "bad.jsonl:2" in p.stderr


def test_batch_long_prompts_split_admission(run_meteor, smollm_gguf, tmp_path, repo_root):
    """Prompts whose prefill cannot share one pass (about 700 tokens each against a budget
    of 2048 per pass) are admitted in several passes, and still match generating alone."""
    faq = [json.loads(l) for l in (repo_root / "data" / "python_faq.jsonl").read_text().splitlines()
           if l.strip()]
    text = " ".join(r["reference_answer"] for r in faq)
    prompts = [text[i * 400:i * 400 + 2600] for i in range(5)]
    batch = tmp_path / "long.jsonl"
    batch.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    proc = run_meteor("generate", "-m", smollm_gguf, "--batch", batch, "--greedy", "-n", 4,
                      "--slots", 4, "--stats", timeout=1200)
    got = [json.loads(l) for l in proc.stdout.splitlines()]
    assert all(600 < g["prompt_tokens"] < 1000 for g in got), [g["prompt_tokens"] for g in got]
    # --stats splits the run into its phases: every prompt token prefilled once, and each
    # sequence's tokens after its first one decoded in steps
    ph = re.search(r"prefill: (\d+) prompt tokens in .*decoding: (\d+) steps, (\d+) tokens",
                   proc.stderr)
    assert ph, proc.stderr
    assert int(ph[1]) == sum(g["prompt_tokens"] for g in got)
    assert int(ph[3]) == sum(len(g["tokens"]) - 1 for g in got)
    assert int(ph[2]) >= 3  # 4 tokens each: 3 steps at least
    for i, p in enumerate(prompts):
        single = json.loads(run_meteor("generate", "-m", smollm_gguf, "-p", p, "--greedy", "-n", 4,
                                       "--json", timeout=600).stdout)
        assert got[i]["tokens"] == single["tokens"], i


def test_batch_progress_and_quiet(run_meteor, smollm_gguf, tmp_path):
    """A --batch job shows a progress bar (finished prompts out of all) on stderr, and
    --quiet removes it; stdout holds only the JSON results either way."""
    batch = tmp_path / "two.jsonl"
    batch.write_text('{"prompt": "One"}\n{"prompt": "Two"}\n')
    loud = run_meteor("generate", "-m", smollm_gguf, "--batch", batch, "--greedy", "-n", 2)
    assert "generate [" in loud.stderr and "2/2" in loud.stderr, loud.stderr
    quiet = run_meteor("generate", "-m", smollm_gguf, "--batch", batch, "--greedy", "-n", 2, "-q")
    assert "generate [" not in quiet.stderr, quiet.stderr
    assert loud.stdout == quiet.stdout
    assert [json.loads(l)["index"] for l in loud.stdout.splitlines()] == [0, 1]
