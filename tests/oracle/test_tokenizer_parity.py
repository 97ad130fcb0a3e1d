"""meteor's tokenizer against Hugging Face on both real models.

The reference is what transformers builds from each GGUF file
(`AutoTokenizer.from_pretrained(dir, gguf_file=name)`, converted once and kept on disk by
tests/hf_cache.py). meteor is driven through `meteor tokenize` twice per model: on the
GGUF file itself and on the tokenizer.json folder that `save_pretrained` writes for the
same reference. Ids must be identical, decoding must give back the text, and chat
rendering must equal the model's template.
"""

import json
import os
import random
from pathlib import Path

import pytest
from tokenizers import pre_tokenizers

from hf_cache import hf_tokenizer

REPO = Path(__file__).resolve().parents[2]
SMOLLM = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = "gemma-3-270m-q4_k_m.gguf"


def find_models():
    candidates = [os.environ.get("METEOR_MODELS"), REPO / "models", "/tmp/models"]
    for d in candidates:
        if d and all((Path(d) / f).is_file() for f in (SMOLLM, GEMMA)):
            return Path(d)
    pytest.fail(f"{SMOLLM} / {GEMMA} not found (METEOR_MODELS, {REPO / 'models'}, /tmp/models)")


def faq_paragraph():
    with open(REPO / "data" / "python_faq_sample.jsonl", encoding="utf-8") as f:
        return json.loads(f.readline())["reference_answer"]


def faq_texts():
    out = []
    with open(REPO / "data" / "python_faq.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                out.append(f"Title: {q['title']}\nContent: {q['question_content']}\n\n{q['reference_answer']}")
    return out


CORPUS = [
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog. It's 5 o'clock; don't you think we'll be late?",
    " leading space",
    "  two leading spaces and trailing  ",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "class Foo:\n\tdef __init__(self):\n\t\tself.x = {'a': [1, 2, 3]}  # comment\n",
    "a  b   c    d     e\t\tf\n\ng\n\n\nh\r\ni\r\n\r\nj",
    " " * 40 + "x" + "\t" * 7 + "y" + "\n" * 5,
    "1234567 and 3.14159, 1,000,000; 2024-06-01 10:30",
    "foo123bar 42x x42 ١٢٣ ⅷ",
    "Emoji: 😀😃 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷 ❤️",
    "中文分词测试，你好世界！日本語のテキスト。한국어 문장입니다.",
    "Café naïve résumé Ångström — “quotes” ‘single’ …",
    "e\u0301 a\u0308 n\u0303 combining marks: Z\u0351\u0362a\u0334l\u0336g\u0338o",
    "Ελληνικά Русский текст العربية עברית हिन्दी ไทย",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<bos><start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n",
    "text<|endoftext|>more <eos> and <pad>",
    "<table><tr><td>cell</td></tr></table> <b>bold</b>",
    "URL: https://docs.python.org/3/faq/general.html?x=1&y=2#what-is-python",
    "I'LL WE'VE they'd SHE'S it’s",
    "\u00a0non-breaking\u2009thin\u3000ideographic space",
    "x" * 300,
    faq_paragraph(),
]


def random_corpus(n=1000, seed=20240601):
    """Short strings mixing scripts, combining marks, ZWJ, odd spaces and special tokens."""
    rng = random.Random(seed)
    alphabet = (
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\n\r.,;:!?'\"()[]{}<>|_-+=*/\\@#$%^&~`")
        + list("éèàüößçñøåæœ中文日本語한국어ไทยहिन्दीالعربيةעבריתΕλληνικάРусский١٢Ⅷ½²")
        + ["\u0301", "\u0308", "\u200d", "\u00a0", "\u3000", "\u2009", "\u0085", "\u2028", "\ufe0f"]
        + ["😀", "👍", "🏽", "👨", "👩", "❤", "🇫", "🇷"]
    )
    pieces = ["<|im_start|>", "<|im_end|>", "<bos>", "<start_of_turn>", "<|endoftext|>", "\n\n\n", "    ",
              "<table>", "'s", "'LL", "\t\t"]
    return [
        "".join(rng.choice(pieces) if rng.random() < 0.05 else rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for _ in range(n)
    ]


SYSTEMLESS = [{"role": "user", "content": "What is a Python decorator?"}]
WITH_SYSTEM = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "  Why are Python strings immutable?  "},
]
MULTI_TURN = [
    {"role": "user", "content": "Hi!"},
    {"role": "assistant", "content": "Hello. How can I help?"},
    {"role": "user", "content": "Explain list comprehensions.\n"},
]
CONVERSATIONS = {"systemless": SYSTEMLESS, "with_system": WITH_SYSTEM, "multi_turn": MULTI_TURN}


@pytest.fixture(scope="module")
def models():
    return find_models()


def smollm_pre_tokenizer():
    """SmolLM2's own tokenizer.json splits every digit off before the byte-level regex
    (llama.cpp's pre-tokenizer "smollm" does the same). transformers' GGUF converter has
    no entry for "smollm" and falls back to plain GPT-2 splitting, which differs on digits
    a vocabulary merges with a space (e.g. " ١٢٣"), so the reference gets the model's own
    pre-tokenizer back."""
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


@pytest.fixture(scope="module")
def hf(models):
    out = {name: hf_tokenizer(models / name) for name in (SMOLLM, GEMMA)}
    out[SMOLLM].backend_tokenizer.pre_tokenizer = smollm_pre_tokenizer()
    return out


@pytest.fixture(scope="module")
def hf_dirs(hf, tmp_path_factory):
    """tokenizer.json folders written by transformers for the same tokenizers."""
    out = {}
    for name, tok in hf.items():
        d = tmp_path_factory.mktemp(name.split("-")[0].lower())
        tok.save_pretrained(str(d))
        assert (d / "tokenizer.json").is_file()
        out[name] = d
    return out


def sources(models, hf_dirs, name):
    return {"gguf": models / name, "tokenizer.json": hf_dirs[name]}


def meteor_batch(run_meteor, tmp_path, model, items, *flags):
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    proc = run_meteor("tokenize", "-m", model, "--batch", path, *flags)
    return json.loads(proc.stdout)


def report(mismatches, total):
    shown = "\n".join(f"  {t!r}\n    hf:     {a}\n    meteor: {b}" for t, a, b in mismatches[:5])
    return f"{len(mismatches)} of {total} strings differ:\n{shown}"


@pytest.mark.parametrize("source", ["gguf", "tokenizer.json"])
@pytest.mark.parametrize("name", [SMOLLM, GEMMA])
def test_encode_matches_hf(run_meteor, tmp_path, models, hf, hf_dirs, name, source):
    model = sources(models, hf_dirs, name)[source]
    want = [hf[name](text)["input_ids"] for text in CORPUS]
    got = meteor_batch(run_meteor, tmp_path, model, CORPUS, "--parse-special")
    bad = [(t, a, b) for t, a, b in zip(CORPUS, want, got) if a != b]
    assert not bad, report(bad, len(CORPUS))


@pytest.mark.parametrize("name", [SMOLLM, GEMMA])
def test_encode_without_special_parsing_matches_hf(run_meteor, tmp_path, models, hf, name):
    """Special tokens written in the text stay text, as with split_special_tokens."""
    backend = hf[name].backend_tokenizer
    backend.encode_special_tokens = True
    try:
        want = [backend.encode(text, add_special_tokens=True).ids for text in CORPUS]
    finally:
        backend.encode_special_tokens = False
    got = meteor_batch(run_meteor, tmp_path, models / name, CORPUS)
    bad = [(t, a, b) for t, a, b in zip(CORPUS, want, got) if a != b]
    assert not bad, report(bad, len(CORPUS))


@pytest.mark.parametrize("name", [SMOLLM, GEMMA])
def test_whole_python_faq_matches_hf(run_meteor, tmp_path, models, hf, name):
    texts = faq_texts()
    assert len(texts) > 100
    want = [hf[name](t)["input_ids"] for t in texts]
    got = meteor_batch(run_meteor, tmp_path, models / name, texts, "--parse-special")
    bad = [(t[:60], a, b) for t, a, b in zip(texts, want, got) if a != b]
    assert not bad, report(bad, len(texts))


@pytest.mark.parametrize("source", ["gguf", "tokenizer.json"])
@pytest.mark.parametrize("name", [SMOLLM, GEMMA])
def test_random_strings_match_hf(run_meteor, tmp_path, models, hf, hf_dirs, name, source):
    corpus = random_corpus()
    model = sources(models, hf_dirs, name)[source]
    want = [hf[name](t)["input_ids"] for t in corpus]
    got = meteor_batch(run_meteor, tmp_path, model, corpus, "--parse-special")
    bad = [(t, a, b) for t, a, b in zip(corpus, want, got) if a != b]
    assert not bad, report(bad, len(corpus))
    text = [hf[name].decode(i, skip_special_tokens=False, clean_up_tokenization_spaces=False) for i in want]
    assert meteor_batch(run_meteor, tmp_path, model, want, "--decode") == text


def test_smollm_folder_keeps_digit_splitting(hf_dirs):
    """The tokenizer.json path must see SmolLM2's Digits pre-tokenizer, not just GPT-2's."""
    pre = json.loads((hf_dirs[SMOLLM] / "tokenizer.json").read_text(encoding="utf-8"))["pre_tokenizer"]
    assert pre["type"] == "Sequence" and pre["pretokenizers"][0]["type"] == "Digits"


@pytest.mark.parametrize("source", ["gguf", "tokenizer.json"])
@pytest.mark.parametrize("name", [SMOLLM, GEMMA])
def test_decode_round_trip(run_meteor, tmp_path, models, hf, hf_dirs, name, source):
    model = sources(models, hf_dirs, name)[source]
    ids = [hf[name](text, add_special_tokens=False)["input_ids"] for text in CORPUS]
    got = meteor_batch(run_meteor, tmp_path, model, ids, "--decode")
    bad = [(t, t, g) for t, g in zip(CORPUS, got) if g != t]
    assert not bad, report(bad, len(CORPUS))
    # With BOS and specials rendered, meteor and HF decode the same ids the same way.
    with_bos = [hf[name](text)["input_ids"] for text in CORPUS]
    want = [hf[name].decode(i, skip_special_tokens=False, clean_up_tokenization_spaces=False) for i in with_bos]
    got = meteor_batch(run_meteor, tmp_path, model, with_bos, "--decode")
    bad = [(t, a, b) for t, a, b in zip(CORPUS, want, got) if a != b]
    assert not bad, report(bad, len(CORPUS))


def render(run_meteor, tmp_path, model, messages, *flags):
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(messages, ensure_ascii=False), encoding="utf-8")
    return json.loads(run_meteor("tokenize", "-m", model, "--chat", path, "--json", *flags).stdout)


@pytest.mark.parametrize("source", ["gguf", "tokenizer.json"])
@pytest.mark.parametrize("conv", sorted(CONVERSATIONS))
@pytest.mark.parametrize("gen", [True, False])
def test_smollm_chat_matches_template(run_meteor, tmp_path, models, hf, hf_dirs, source, conv, gen):
    messages = CONVERSATIONS[conv]
    want = hf[SMOLLM].apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
    model = sources(models, hf_dirs, SMOLLM)[source]
    flags = () if gen else ("--no-gen-prompt",)
    assert render(run_meteor, tmp_path, model, messages, *flags) == want


def test_smollm_chat_injects_default_system_prompt(run_meteor, tmp_path, models):
    text = render(run_meteor, tmp_path, models / SMOLLM, SYSTEMLESS)
    assert text.startswith(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    )


GEMMA_EXPECTED = {
    "systemless": "<bos><start_of_turn>user\nWhat is a Python decorator?<end_of_turn>\n<start_of_turn>model\n",
    "with_system": "<bos><start_of_turn>user\nYou answer briefly.\n\nWhy are Python strings immutable?"
    "<end_of_turn>\n<start_of_turn>model\n",
    "multi_turn": "<bos><start_of_turn>user\nHi!<end_of_turn>\n<start_of_turn>model\nHello. How can I help?"
    "<end_of_turn>\n<start_of_turn>user\nExplain list comprehensions.<end_of_turn>\n<start_of_turn>model\n",
}


@pytest.mark.parametrize("conv", sorted(CONVERSATIONS))
def test_gemma_chat_matches_expected(run_meteor, tmp_path, models, conv):
    """The Gemma GGUF ships no template; the family comes from the architecture."""
    assert render(run_meteor, tmp_path, models / GEMMA, CONVERSATIONS[conv]) == GEMMA_EXPECTED[conv]


def test_gemma_chat_tokens_match_hf(run_meteor, tmp_path, models, hf):
    text = GEMMA_EXPECTED["multi_turn"]
    want = hf[GEMMA](text, add_special_tokens=False)["input_ids"]
    got = meteor_batch(run_meteor, tmp_path, models / GEMMA, [text], "--parse-special", "--no-special")
    assert got == [want]
    assert want[0] == hf[GEMMA].convert_tokens_to_ids("<bos>")
