"""Quantised dot-product kernels on every row of real weights (SmolLM2 Q4_1/Q8_0,
Gemma 3 Q5_0/Q8_0/Q4_K/Q6_K), through build/tools/qdot_check.

The tool reports, per tensor, the worst ratio of each error to its derived bound (the
same bounds as tests/unit/test_qdot.c, where 1.0 is the limit):
  simd     AVX2 vs scalar kernel (float summation order only; integer block sums exact)
  simd512  AVX-512 VNNI vs scalar kernel, likewise
  kern  each kernel vs the exact dot with the same int8 activations
  act   each kernel vs the exact f32 dot, bounded by half an activation step per value
and checks that batching tokens (mt_matmul_q) gives the same bits as one at a time, in
every implementation the CPU runs.

rel_rms / rel_max are |y - exact f32 dot| / sum|w x| over all rows: the accuracy cost of
Q8 activations on these heavy-tailed test activations, measured at rms 0.09-0.31% and
max 1.3% per tensor; asserted below 1% rms and 5% max so a systematic error (a wrong scale, a
dropped min or offset) cannot hide inside the rigorous but loose `act` bound.
"""
import json
import subprocess
from pathlib import Path

import pytest

SMOLLM_TENSORS = [
    "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight",
    "blk.15.ffn_gate.weight", "blk.29.ffn_up.weight", "token_embd.weight",
]
GEMMA_TENSORS = [
    "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight",
    "blk.0.attn_output.weight", "blk.0.ffn_down.weight", "blk.2.ffn_down.weight",
    "blk.17.ffn_gate.weight", "blk.17.ffn_down.weight", "token_embd.weight",
]


def cpu_flags() -> set[str]:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    return flags


def cpu_has_avx2() -> bool:
    return {"avx2", "fma", "f16c"} <= cpu_flags()


def cpu_has_avx512() -> bool:
    return cpu_has_avx2() and {"avx512f", "avx512bw", "avx512dq", "avx512vl",
                               "avx512_vnni"} <= cpu_flags()


def run_check(build_dir: Path, gguf: Path, tensors: list[str]) -> list[dict]:
    exe = build_dir / "tools" / "qdot_check"
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: build it with `make`", pytrace=False)
    proc = subprocess.run([str(exe), str(gguf), *tensors], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["tensor"] for r in rows] == tensors
    return rows


@pytest.mark.parametrize("model", ["smollm", "gemma"])
def test_qdot_real_weights(model, build_dir, smollm_gguf, gemma_gguf):
    gguf, tensors = ((smollm_gguf, SMOLLM_TENSORS) if model == "smollm"
                     else (gemma_gguf, GEMMA_TENSORS))
    results = run_check(build_dir, gguf, tensors)
    types = {r["type"] for r in results}
    expected_types = {"Q4_1", "Q8_0"} if model == "smollm" else {"Q5_0", "Q8_0", "Q4_K", "Q6_K"}
    assert types == expected_types
    for r in results:
        print(f"{model} {r['tensor']:26s} {r['type']:5s} {r['rows']:6d} rows: "
              f"simd/2T {r['simd']:.3g}, simd512/2T {r['simd512']:.3g}, kern/T {r['kern']:.3g}, "
              f"act/bound {r['act']:.3g}, "
              f"rel rms {r['rel_rms']:.2e} max {r['rel_max']:.2e}")
        assert r["avx2"] == cpu_has_avx2()
        assert r["avx512"] == cpu_has_avx512()
        assert r["batch_bitexact"], r
        assert r["simd"] <= 1.0, r
        assert r["simd512"] <= 1.0, r
        assert r["kern"] <= 1.0, r
        assert r["act"] <= 1.0, r
        assert r["rel_rms"] < 0.01, r
        assert r["rel_max"] < 0.05, r
