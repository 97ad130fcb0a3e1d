"""Greedy generation of both real models equals transformers' greedy decoding.

transformers loads the same GGUF files (its loader dequantises them) and runs fp32;
meteor generates through its own tokenizer, forward pass and sampler.
"""
import json

import pytest
import torch
import transformers

N_TOKENS = 32
PROMPTS = [
    "The Python programming language was created by",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
]
CHAT_QUESTION = "How do I read a file line by line in Python?"


@pytest.fixture(scope="module", params=["smollm", "gemma"])
def hf_model(request, smollm_gguf, gemma_gguf, hf_gguf):
    gguf = smollm_gguf if request.param == "smollm" else gemma_gguf
    model, tok = hf_gguf(gguf)
    return gguf, model, tok


def hf_greedy(model, tok, ids):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=N_TOKENS, do_sample=False, num_beams=1,
                             repetition_penalty=1.0, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.eos_token_id)
    gen = out[0, len(ids):].tolist()
    if tok.eos_token_id in gen:
        gen = gen[:gen.index(tok.eos_token_id)]
    return gen


def meteor_greedy(run_meteor, gguf, prompt, chat=False):
    args = ["generate", "-m", gguf, "-p", prompt, "--greedy", "-n", N_TOKENS, "--json", "--precise"]
    if chat:
        args.append("--chat")
    return json.loads(run_meteor(*args).stdout)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_matches_transformers(hf_model, run_meteor, prompt):
    gguf, model, tok = hf_model
    ids = tok(prompt)["input_ids"]
    want = hf_greedy(model, tok, ids)
    got = meteor_greedy(run_meteor, gguf, prompt)
    assert got["prompt_tokens"] == len(ids)
    print(f"{gguf.name}: {len(want)} tokens, text {got['text']!r}")
    assert got["tokens"] == want
    assert got["text"] == tok.decode(want, skip_special_tokens=True)


def test_chat_greedy_matches_transformers(hf_model, run_meteor):
    gguf, model, tok = hf_model
    if tok.chat_template:
        text = tok.apply_chat_template([{"role": "user", "content": CHAT_QUESTION}], tokenize=False,
                                       add_generation_prompt=True)
    else:  # Gemma's GGUF ships no template: its documented turn format.
        text = f"<bos><start_of_turn>user\n{CHAT_QUESTION}<end_of_turn>\n<start_of_turn>model\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    got = meteor_greedy(run_meteor, gguf, CHAT_QUESTION, chat=True)
    assert got["prompt_tokens"] == len(ids)
    want = hf_greedy(model, tok, ids)
    vocab = tok.get_vocab()
    end_of_turn = {vocab[t] for t in ("<|im_end|>", "<end_of_turn>") if t in vocab}
    for i, t in enumerate(want):
        if t in end_of_turn:
            want = want[:i]
            break
    assert got["tokens"] == want
