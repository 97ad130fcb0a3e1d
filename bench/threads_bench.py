#!/usr/bin/env python3
"""Threads benchmark: 2 threads against 1, on a quiet machine and beside a busy core.

A benchmark, never a test: it asserts nothing about timings and only prints figures.

    .venv/bin/python bench/threads_bench.py [--baseline OLD_METEOR] [--reps 3] [--quick]

meteor usually runs beside its expert server on the same machine, so one of its cores is
often busy with another process. This measures, with SmolLM2 (Q4_1):
  - decoding: `generate --batch` of 16 prompts with 16 slots, greedy, 64 new tokens each
    (decoding tokens/s from --stats), and one sequence's greedy decoding (--json);
  - a LoRA step: `train` on 256-token examples, rank 8 on all projections (tokens/s of the
    steps after the first, from metrics.jsonl);
each with --threads 1 and 2, on a quiet machine and with a busy loop pinned to one core
(a child process spinning on the last CPU). With --baseline, another meteor binary (e.g.
one built from an older commit) runs the quiet cells too, so the quiet figures compare
(beside a busy core an OpenMP build can take minutes per run: --baseline-busy adds those).
Targets: beside the busy core, 2 threads >= 1 thread; quiet, within 3 % of the baseline.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        info = f.read()
    name = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
    fam = re.search(r"^cpu family\s*:\s*(\d+)$", info, re.M)
    mod = re.search(r"^model\s*:\s*(\d+)$", info, re.M)
    return (f"{name[1] if name else '?'} (family {fam[1] if fam else '?'}, "
            f"model {mod[1] if mod else '?'}), {NCPU} CPUs")


def cpu_busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / HZ


def wait_quiet(max_s):
    """Waits up to max_s for a second in which the CPUs are < 10 % busy; returns the share."""
    t0 = time.perf_counter()
    while True:
        b0, s0 = cpu_busy_seconds(), time.perf_counter()
        time.sleep(1.0)
        share = (cpu_busy_seconds() - b0) / ((time.perf_counter() - s0) * NCPU)
        if share < 0.10 or time.perf_counter() - t0 > max_s:
            return share


class BusyCore:
    """A child process spinning on one CPU (the last), as another program would."""

    def __init__(self, cpu):
        self.cpu = cpu
        self.proc = None

    def __enter__(self):
        code = (f"import os\nos.sched_setaffinity(0, {{{self.cpu}}})\n"
                "x = 0\nwhile True:\n    x += 1\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, stdin=subprocess.DEVNULL)
    if p.returncode:
        sys.exit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-3000:]}")
    return p


def faq(n):
    rows = [json.loads(l) for l in (REPO / "data" / "python_faq.jsonl").read_text().splitlines()
            if l.strip()]
    return rows[:n]


def decode_batch(meteor, threads, batch_file, gen):
    p = run([meteor, "generate", "-m", MODEL, "--batch", batch_file, "--slots", "16",
             "--greedy", "-n", str(gen), "--stats", "--threads", str(threads)])
    m = [re.search(r"decoding: (\d+) steps, (\d+) tokens in ([\d.]+) s", l)
         for l in p.stderr.splitlines()]
    m = [x for x in m if x]
    if not m:
        sys.exit("meteor --batch --stats printed no decoding line")
    return int(m[-1][2]) / float(m[-1][3])


def decode_one(meteor, threads, prompt, gen):
    p = run([meteor, "generate", "-m", MODEL, "-p", prompt, "--chat", "-n", str(gen), "--greedy",
             "--json", "--threads", str(threads)])
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return len(r["tokens"]) / r["decode_seconds"]


def lora_step(meteor, threads, data, work, steps):
    out = Path(tempfile.mkdtemp(dir=work, prefix="train_"))
    run([meteor, "train", "-m", MODEL, "--data", data, "--out", out / "run", "--lora-rank", "8",
         "--lora-targets", "q,k,v,o,gate,up,down", "--batch-size", "1", "--max-len", "256",
         "--max-steps", str(steps), "--save-every", "0", "--threads", str(threads), "--quiet"])
    rows = [json.loads(l) for l in (out / "run" / "metrics.jsonl").read_text().splitlines()
            if l.strip()]
    rates = [r["tokens_per_s"] for r in rows[1:]] or [rows[0]["tokens_per_s"]]
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meteor", default=str(REPO / "build" / "meteor"))
    ap.add_argument("--baseline", help="another meteor binary to measure on the quiet machine")
    ap.add_argument("--baseline-busy", action="store_true",
                    help="measure the baseline beside the busy core too")
    ap.add_argument("--reps", type=int, default=3, help="runs per cell; the median is kept")
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    ap.add_argument("--wait-quiet", type=float, default=20,
                    help="seconds to wait for idle CPUs before the quiet runs")
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    args = ap.parse_args()
    if NCPU < 2:
        sys.exit("needs at least 2 CPUs")
    gen = 32 if args.quick else 64
    steps = 3 if args.quick else 5

    work = Path(tempfile.mkdtemp(prefix="meteor_threads_bench_"))
    rows = faq(16)
    batch_file = work / "batch.jsonl"
    batch_file.write_text("".join(json.dumps({"prompt": r["title"]}) + "\n" for r in rows))
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps({"question": r["title"], "answer": r["reference_answer"]})
                            + "\n" for r in faq(8)))
    binaries = [("meteor", args.meteor)] + ([("baseline", args.baseline)] if args.baseline else [])
    workloads = [
        ("decode 16 slots", lambda m, t: decode_batch(m, t, batch_file, gen)),
        ("decode 1 sequence", lambda m, t: decode_one(m, t, rows[0]["title"], 2 * gen)),
        ("LoRA step (256 tok)", lambda m, t: lora_step(m, t, data, work, steps)),
    ]
    results = {}
    for cond in ("quiet", "busy core"):
        if cond == "quiet":
            share = wait_quiet(args.wait_quiet)
            log(f"[quiet] CPUs {100 * share:.0f}% busy before the runs")
        cells = [(w, b, t) for w in workloads for b in binaries for t in (1, 2)
                 if not (b[0] == "baseline" and cond != "quiet" and not args.baseline_busy)]
        runs = {(w[0], b[0], t): [] for w, b, t in cells}
        busy = BusyCore(NCPU - 1) if cond == "busy core" else None
        if busy:
            busy.__enter__()
        try:
            # the cells take turns within each repetition, so a drift in the machine's
            # speed touches them alike
            for rep in range(args.reps):
                for (wname, fn), (bname, binary), threads in cells:
                    v = fn(binary, threads)
                    runs[(wname, bname, threads)].append(v)
                    log(f"[{cond}] rep {rep + 1}: {wname}, {bname}, {threads} thread(s): "
                        f"{v:.1f} tok/s")
        finally:
            if busy:
                busy.__exit__(None, None, None)
        for (wname, bname, threads), vals in runs.items():
            results[(cond, wname, bname, threads)] = statistics.median(vals)

    print(f"meteor threads benchmark on {cpu_model()}; SmolLM2-135M Q4_1; "
          f"median of {args.reps} runs; tokens/s")
    print(f"{'workload':22} {'binary':9} {'quiet 1T':>9} {'quiet 2T':>9} {'busy 1T':>9} "
          f"{'busy 2T':>9} {'busy 2T/1T':>11}")
    for wname, _ in workloads:
        for bname, _ in binaries:
            q1, q2 = (results[("quiet", wname, bname, t)] for t in (1, 2))
            if ("busy core", wname, bname, 1) not in results:
                print(f"{wname:22} {bname:9} {q1:9.1f} {q2:9.1f} {'-':>9} {'-':>9}")
                continue
            b1, b2 = (results[("busy core", wname, bname, t)] for t in (1, 2))
            print(f"{wname:22} {bname:9} {q1:9.1f} {q2:9.1f} {b1:9.1f} {b2:9.1f} "
                  f"{b2 / b1:10.2f}x" + ("" if b2 >= b1 else "  (target >= 1)"))
    if args.baseline:
        print("quiet 2 threads, meteor / baseline (target >= 0.97):")
        for wname, _ in workloads:
            r = results[("quiet", wname, "meteor", 2)] / results[("quiet", wname, "baseline", 2)]
            print(f"  {wname:22} {r:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), "results": [
            {"condition": c, "workload": w, "binary": b, "threads": t, "tok_s": v}
            for (c, w, b, t), v in results.items()]}, indent=1))


if __name__ == "__main__":
    main()
