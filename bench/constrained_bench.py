"""JSON-schema-constrained decoding: mask cost and throughput against free decoding.

    .venv/bin/python bench/constrained_bench.py [--model GGUF] [--docs N] [--tokens N]

1. build/tools/json_mask_bench on the model's vocabulary (Qwen2.5-Coder-0.5B by default,
   151,936 embedding rows): token-index build, schema compile time, and the time to fill a
   token mask per decoding step (median and p99) over simulated random documents, for the
   verdict, five-criteria judge, nested (anyOf + recursive $ref) and any-object schemas.
2. meteor generate, greedy, the same chat prompt with and without --json-schema, in
   alternation (--reps times): decoding tokens/s of each, and their ratio.

Targets of issue 15: mask median <= 50 us, p99 <= 500 us, compile <= 200 ms, constrained
>= 0.95x unconstrained decoding throughput. Prints the CPU model and the load average; run
it on an idle machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QWEN05 = ROOT / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

VERDICT = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["accept", "revise"]},
        "feedback": {"type": "string", "maxLength": 400},
        "hints": {"type": "array", "items": {"type": "string", "maxLength": 120}, "maxItems": 3},
    },
    "required": ["verdict", "feedback", "hints"],
}
PROMPT = ("Judge this answer to 'How do I reverse a list in Python?': 'Call reversed(xs), or "
          "xs.reverse() to reverse in place.' Give a verdict (accept or revise), detailed "
          "feedback and up to three hints, as JSON.")


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
            break
    else:
        name = "unknown"
    fam = mod = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu family"):
            fam = line.split(":", 1)[1].strip()
        elif line.startswith("model") and not line.startswith("model name"):
            mod = line.split(":", 1)[1].strip()
        if fam != "?" and mod != "?":
            break
    return f"{name} (family {fam}, model {mod}), {os.cpu_count()} cores"


def generate(meteor, model, schema_file, max_tokens, threads):
    cmd = [str(meteor), "generate", "-m", str(model), "--chat", "-p", PROMPT, "--greedy",
           "-n", str(max_tokens), "--json", "-t", str(threads)]
    if schema_file:
        cmd += ["--json-schema", str(schema_file)]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    n = len(out["tokens"])
    return n, n / out["decode_seconds"], out["stop"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(QWEN05))
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--docs", type=int, default=20, help="simulated documents per schema")
    ap.add_argument("--tokens", type=int, default=160, help="decoding tokens per run")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    build = Path(args.build)
    print(f"CPU: {cpu_model()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"model: {args.model}\n")

    print("== mask cost (json_mask_bench)")
    sys.stdout.flush()
    subprocess.run([str(build / "tools" / "json_mask_bench"), args.model, str(args.docs), "1"],
                   check=True)

    print("\n== decoding throughput, greedy, constrained vs free (same prompt, alternating)")
    with tempfile.TemporaryDirectory() as tmp:
        schema_file = Path(tmp) / "verdict.json"
        schema_file.write_text(json.dumps(VERDICT))
        free, constrained = [], []
        for rep in range(args.reps):
            n_c, tps_c, stop_c = generate(build / "meteor", args.model, schema_file, args.tokens,
                                          args.threads)
            n_f, tps_f, stop_f = generate(build / "meteor", args.model, None, args.tokens,
                                          args.threads)
            constrained.append(tps_c)
            free.append(tps_f)
            print(f"  rep {rep + 1}: constrained {n_c} tokens ({stop_c}) {tps_c:.2f} tok/s; "
                  f"free {n_f} tokens ({stop_f}) {tps_f:.2f} tok/s")
        mc, mf = statistics.median(constrained), statistics.median(free)
        print(f"  median: constrained {mc:.2f} tok/s, free {mf:.2f} tok/s, ratio {mc / mf:.3f}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
