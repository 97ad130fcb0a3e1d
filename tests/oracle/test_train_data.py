"""meteor's training examples against transformers on both real models.

`data_dump` loads a JSONL file exactly as `meteor train` does and prints every example's
tokens and loss mask. The reference is built here from Hugging Face's tokenizer of the
same GGUF file: the conversation rendered with the chat template (SmolLM2: the template the
model ships, through `apply_chat_template`; Gemma: its documented turn format, as in
test_tokenizer_parity.py), tokenised, and cut after the assistant's end-of-turn token. The
mask covers the answer and that end-of-turn token, nothing of the prompt.
"""

import json
import subprocess

import pytest
from tokenizers import pre_tokenizers

from conftest import GEMMA_FILE, REPO_ROOT, SMOLLM_FILE
from hf_cache import hf_tokenizer

EOT = {SMOLLM_FILE: "<|im_end|>", GEMMA_FILE: "<end_of_turn>"}


def faq_records(n):
    out = []
    with open(REPO_ROOT / "data" / "python_faq.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip() and len(out) < n:
                q = json.loads(line)
                out.append({"title": q["title"], "question_content": q["question_content"],
                            "answer": q["reference_answer"], "category": q["category"]})
    return out


SFT_RECORDS = faq_records(4) + [
    {"question": "What is a Python decorator?", "answer": "A function that wraps another function.",
     "system": "You answer briefly."},
    {"question_title": "Tuples vs lists",
     "question_content": "When should I use a tuple instead of a list?",
     "answer": "Use a tuple for fixed records; it is immutable and hashable. 😀"},
    {"title": "Swap two variables", "answer": "a, b = b, a\n\nNo temporary is needed."},
    # Opens with a blank line: SmolLM2's "\n" after "assistant" merges with it when the
    # whole text is tokenised at once, so meteor keeps the prompt's own tokens instead.
    {"question": "What is 2+2?", "answer": "\n\nIt is 4."},
]

PREF_RECORDS = [
    {"question": "How do I reverse a list in Python?",
     "chosen": "Use `items.reverse()` in place, or `items[::-1]` for a reversed copy.",
     "rejected": "You can't."},
    {"title": "Why is my loop slow?", "question_content": "It appends to a string 10000 times.",
     "chosen": "Strings are immutable, so each += copies; collect parts in a list and join them.",
     "rejected": "Python is slow.", "system": "Be precise."},
]


def user_turn(rec):
    """The joining rule of src/train/data.h."""
    if "question" in rec:
        return rec["question"]
    title = rec.get("question_title", rec.get("title"))
    content = rec.get("question_content")
    has_t, has_c = bool(title and title.strip()), bool(content and content.strip())
    if has_t and has_c and not content.startswith(title):
        return f"{title}\n\n{content}"
    return content if has_c else title


def messages(rec):
    msgs = [{"role": "system", "content": rec["system"]}] if rec.get("system") else []
    return msgs + [{"role": "user", "content": user_turn(rec)}]


def gemma_render(msgs, add_generation_prompt):
    """Gemma 3's chat template for plain text turns (the GGUF ships no template)."""
    system = None
    if msgs and msgs[0]["role"] == "system":
        system, msgs = msgs[0]["content"], msgs[1:]
    out = "<bos>"
    for i, m in enumerate(msgs):
        content = m["content"].strip()
        if i == 0 and system:
            content = f"{system}\n\n{content}"
        role = "model" if m["role"] == "assistant" else "user"
        out += f"<start_of_turn>{role}\n{content}<end_of_turn>\n"
    return out + ("<start_of_turn>model\n" if add_generation_prompt else "")


def smollm_pre_tokenizer():
    """SmolLM2 splits digits before the byte-level regex; transformers' GGUF converter does
    not know its "smollm" pre-tokenizer (see test_tokenizer_parity.py)."""
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])


@pytest.fixture(scope="module")
def hf(models_dir):
    out = {name: hf_tokenizer(models_dir / name) for name in (SMOLLM_FILE, GEMMA_FILE)}
    out[SMOLLM_FILE].backend_tokenizer.pre_tokenizer = smollm_pre_tokenizer()
    return out


@pytest.fixture(scope="session")
def data_dump(build_dir):
    exe = build_dir / "tools" / "data_dump"
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: build it with `make`", pytrace=False)
    return exe


def dump(data_dump, model, records, tmp_path, *flags, check=True):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    proc = subprocess.run([str(data_dump), str(model), str(path), *map(str, flags)],
                          capture_output=True, text=True, timeout=300)
    if not check:
        return proc
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def encode(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def reference(tok, name, rec, answer):
    """(tokens, n_prompt, boundary_merged) for one conversation, built with transformers."""
    msgs = messages(rec)
    full_msgs = msgs + [{"role": "assistant", "content": answer}]
    if name == SMOLLM_FILE:
        prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(full_msgs, tokenize=False)
        applied = tok.apply_chat_template(full_msgs, tokenize=True)
        # transformers 5 returns a BatchEncoding, older versions a plain list
        whole_ids = list(applied["input_ids"] if hasattr(applied, "keys") else applied)
    else:
        prompt, full = gemma_render(msgs, True), gemma_render(full_msgs, False)
        whole_ids = encode(tok, full)
    assert full.startswith(prompt)
    eot = tok.convert_tokens_to_ids(EOT[name])
    whole_ids = whole_ids[: len(whole_ids) - whole_ids[::-1].index(eot)]
    cut = full[: full.rindex(EOT[name]) + len(EOT[name])]
    assert encode(tok, cut) == whole_ids
    p = encode(tok, prompt)
    if whole_ids[: len(p)] == p:
        return whole_ids, len(p), False
    return p + encode(tok, cut[len(prompt):]), len(p), True


def check_example(got, want_tokens, n_prompt, line, train_prompt=False):
    assert got["line"] == line
    assert got["tokens"] == want_tokens
    assert got["n_prompt"] == n_prompt
    first = 1 if train_prompt else n_prompt
    assert got["mask"] == [int(i >= first) for i in range(len(want_tokens))]
    assert got["n_trained"] == len(want_tokens) - first
    assert got["truncated"] is False


@pytest.mark.parametrize("name", [SMOLLM_FILE, GEMMA_FILE])
def test_sft_tokens_and_mask_match_transformers(data_dump, models_dir, hf, tmp_path, name):
    out = dump(data_dump, models_dir / name, SFT_RECORDS, tmp_path)
    assert out["kind"] == "sft"
    assert out["family"] == ("chatml" if name == SMOLLM_FILE else "gemma")
    assert (out["n_records"], out["n"], out["n_truncated"], out["n_dropped"]) == (8, 8, 0, 0)
    merged = []
    for i, (rec, got) in enumerate(zip(SFT_RECORDS, out["examples"])):
        tokens, n_prompt, boundary_merged = reference(hf[name], name, rec, rec["answer"])
        check_example(got, tokens, n_prompt, i + 1)
        assert got["tokens"][-1] == hf[name].convert_tokens_to_ids(EOT[name])
        merged.append(boundary_merged)
    # Only SmolLM2's blank-line answer crosses the boundary; Gemma trims the answer.
    assert merged == [False] * 7 + [name == SMOLLM_FILE]


@pytest.mark.parametrize("name", [SMOLLM_FILE, GEMMA_FILE])
def test_prompt_training_mask_and_default_system(data_dump, models_dir, hf, tmp_path, name):
    out = dump(data_dump, models_dir / name, SFT_RECORDS[:2], tmp_path, "--train-prompt")
    for i, (rec, got) in enumerate(zip(SFT_RECORDS[:2], out["examples"])):
        tokens, n_prompt, _ = reference(hf[name], name, rec, rec["answer"])
        check_example(got, tokens, n_prompt, i + 1, train_prompt=True)
    if name == SMOLLM_FILE:  # no system field: the template's default system prompt is there
        text = hf[name].decode(out["examples"][0]["tokens"])
        assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")


@pytest.mark.parametrize("name", [SMOLLM_FILE, GEMMA_FILE])
def test_preference_pairs_match_transformers(data_dump, models_dir, hf, tmp_path, name):
    out = dump(data_dump, models_dir / name, PREF_RECORDS, tmp_path)
    assert out["kind"] == "preference"
    assert out["n"] == len(PREF_RECORDS)
    for i, (rec, got) in enumerate(zip(PREF_RECORDS, out["examples"])):
        for side in ("chosen", "rejected"):
            tokens, n_prompt, _ = reference(hf[name], name, rec, rec[side])
            check_example(got[side], tokens, n_prompt, i + 1)
        n = got["chosen"]["n_prompt"]
        assert got["chosen"]["tokens"][:n] == got["rejected"]["tokens"][:n]


@pytest.mark.parametrize("name", [SMOLLM_FILE, GEMMA_FILE])
def test_truncation_is_counted(data_dump, models_dir, hf, tmp_path, name):
    refs = [reference(hf[name], name, r, r["answer"]) for r in SFT_RECORDS]
    lengths = sorted(len(t) for t, _, _ in refs)
    max_len = lengths[len(lengths) // 2]
    out = dump(data_dump, models_dir / name, SFT_RECORDS, tmp_path, "--max-len", max_len)
    kept = [(i, t, p) for i, (t, p, _) in enumerate(refs) if p < max_len]
    assert out["n"] == len(kept)
    assert out["n_dropped"] == len(refs) - len(kept)
    assert out["n_truncated"] == sum(len(t) > max_len for _, t, _ in kept)
    assert out["n_truncated"] > 0
    for (i, tokens, n_prompt), got in zip(kept, out["examples"]):
        assert got["line"] == i + 1
        assert got["tokens"] == tokens[:max_len]
        assert got["truncated"] == (len(tokens) > max_len)
        assert got["mask"] == [int(j >= n_prompt) for j in range(min(len(tokens), max_len))]
    # a limit below every prompt drops everything, and says so
    short = min(p for _, p, _ in refs)
    out = dump(data_dump, models_dir / name, SFT_RECORDS, tmp_path, "--max-len", short)
    assert (out["n"], out["n_dropped"]) == (0, len(refs))


def test_bad_record_names_file_and_line(data_dump, models_dir, tmp_path):
    records = SFT_RECORDS[:2] + [{"question": "q", "answer": "   "}]
    proc = dump(data_dump, models_dir / SMOLLM_FILE, records, tmp_path, check=False)
    assert proc.returncode == 1
    assert f"{tmp_path / 'data.jsonl'}:3: field 'answer' is empty" in proc.stderr
