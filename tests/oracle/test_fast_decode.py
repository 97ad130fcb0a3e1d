"""The fast decoding path (8-bit activations, quantised dot products) against the
precise f32 path on the real models: same weights, incremental decoding through the KV
cache. The fast path is not bit-equal by design; this bounds how far it drifts."""
import subprocess

import numpy as np
import pytest

PROMPT = ("Python is a high-level, general-purpose programming language. Its design philosophy "
          "emphasizes code readability with the use of significant indentation. Python is dynamically "
          "typed and garbage-collected.")


@pytest.mark.parametrize("model", ["smollm_gguf", "gemma_gguf"])
def test_fast_decode_close_to_precise(model, request, build_dir, run_meteor, tmp_path):
    gguf = request.getfixturevalue(model)
    ids = [int(x) for x in run_meteor("tokenize", "-m", gguf, "-p", PROMPT, "--json").stdout
           .strip().strip("[]").split(",")]
    out = {}
    for mode in ("precise", "fast"):
        f = tmp_path / f"{mode}.f32"
        # Split 1: every token after the first goes through the decoding path.
        subprocess.run([str(build_dir / "tools" / "dump_logits"), str(gguf), ",".join(map(str, ids)),
                        str(f), "1", "2", mode], check=True)
        out[mode] = np.fromfile(f, dtype=np.float32).reshape(len(ids), -1)
    p, q = out["precise"], out["fast"]
    agree = (p.argmax(-1) == q.argmax(-1)).mean()
    rel = np.abs(p - q).max() / np.abs(p).max()
    print(f"{gguf.name}: {len(ids)} positions, top-1 agreement {agree:.3f}, max |diff| / max |logit| {rel:.4f}")
    assert agree >= 0.85
    assert rel <= 0.1
    assert_clear_choices_agree(p, q)


def assert_clear_choices_agree(p, q):
    """Wherever the precise path's best token leads its second by more than 1% of the
    largest logit, the fast path picks the same token. (Near-ties may flip: 8-bit
    activations move logits by a few hundredths, and top-1 agreement over 36 positions
    moves by 1/36 with each such flip.)"""
    top2 = np.sort(p, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.01 * np.abs(p).max()
    flipped = np.nonzero(clear & (p.argmax(-1) != q.argmax(-1)))[0]
    assert clear.sum() >= len(p) // 2 and len(flipped) == 0, f"clear choices flipped at {flipped}"


def test_fast_long_prompt_past_sliding_window(gemma_gguf, build_dir, run_meteor, repo_root, tmp_path):
    """A prompt longer than Gemma 3's 512-token sliding window, prefilled on the fast path
    (f16 KV cache: the prompt's attention tasks widen only the keys their queries can see)
    in one call of 641 tokens, so its last attention block holds a single query, then
    decoded token by token: still close to the precise path at every position."""
    import json
    faq = [json.loads(l) for l in (repo_root / "data" / "python_faq.jsonl").read_text().splitlines()
           if l.strip()]
    text = " ".join(r["reference_answer"] for r in faq)[:4000]
    ids = [int(x) for x in run_meteor("tokenize", "-m", gemma_gguf, "-p", text, "--json").stdout
           .strip().strip("[]").split(",")][:700]
    assert len(ids) == 700
    out = {}
    for mode in ("precise", "fast"):
        f = tmp_path / f"{mode}.f32"
        subprocess.run([str(build_dir / "tools" / "dump_logits"), str(gemma_gguf),
                        ",".join(map(str, ids)), str(f), "641", "2", mode], check=True)
        out[mode] = np.fromfile(f, dtype=np.float32).reshape(len(ids), -1)
    p, q = out["precise"], out["fast"]
    for name, rows in (("prompt", slice(0, 641)), ("past the window", slice(512, 700)),
                       ("decoded", slice(641, 700))):
        agree = (p[rows].argmax(-1) == q[rows].argmax(-1)).mean()
        rel = np.abs(p[rows] - q[rows]).max() / np.abs(p[rows]).max()
        print(f"{name}: top-1 agreement {agree:.3f}, max |diff| / max |logit| {rel:.4f}")
        assert agree >= 0.85, name
        assert rel <= 0.15, name
