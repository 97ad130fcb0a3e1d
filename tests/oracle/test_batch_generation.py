"""Batched generation (continuous batching over KV slots) gives every sequence the same
greedy tokens as generating it alone, with fewer slots than prompts so slots are reused."""
import json

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


def test_batch_bad_lines(run_meteor, smollm_gguf, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"nothing": 1}\n')
    p = run_meteor("generate", "-m", smollm_gguf, "--batch", bad, check=False)
    assert p.returncode != 0 and "bad.jsonl:2" in p.stderr
    bad.write_text('{"prompt": "ok"}\nnot json\n')
    p = run_meteor("generate", "-m", smollm_gguf, "--batch", bad, check=False)
    assert p.returncode != 0 and "bad.jsonl:2" in p.stderr
