#!/usr/bin/env python3
"""Beam search batched across questions (issue 17): questions per minute, greedy and beam-4,
several questions at a time against one at a time, on the same model and questions.

A benchmark, never a test: it asserts nothing about timings and only prints figures.

    .venv/bin/python bench/beam_batch_bench.py [--questions 32] [--tokens 256] [--model GGUF]

Every run is a child process of its own (model loaded once per run; the figures count only
the generation, from meteor's own timers):
  - greedy: `meteor generate --batch Q.jsonl --chat --greedy -n T --stats` with --slots 1
    and --slots S (continuous batching, S sequences per forward pass);
  - beam-N: `build/tools/beam_tool --batch MODEL N T 1.0 0 - THREADS P --fast` on the same
    questions as chat prompts (mt_beam_search_batch in meteor's fast decoding mode, as
    `meteor generate --beams` decodes), with P = 1 (one question at a time: the path
    mt_beam_search takes) and P = --beam-prompts (their beams in one forward pass per step).
It checks that batching changed no output (greedy texts; every beam hypothesis, bit for bit),
and prints questions per minute, seconds per generated token (answer tokens: greedy's reply,
beam's best hypothesis) and the ratios: batched / one at a time, beam / greedy (issue 17's
target: beam-4 time per generated token <= 2x greedy's).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NCPU = os.cpu_count() or 1


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_model():
    info = Path("/proc/cpuinfo").read_text()
    name = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", info, re.M)
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni") if flags and f in flags[1].split()]
    return f"{name[1] if name else '?'}, {NCPU} CPUs, {' '.join(simd) or 'no AVX2'}"


def questions(n):
    """The first n titles of data/python_faq.jsonl (each a question)."""
    out = []
    for line in (REPO / "data" / "python_faq.jsonl").read_text().splitlines():
        if line.strip():
            out.append(json.loads(line)["title"])
        if len(out) == n:
            return out
    sys.exit(f"data/python_faq.jsonl has only {len(out)} questions, not {n}")


def busy_seconds():
    """CPU seconds the whole machine spent busy so far (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def run(cmd, threads, stdin_path=None):
    """Runs cmd (stdin from stdin_path) with every thread count set to `threads`; returns
    stdout, stderr, peak RSS MiB, and the share of all CPUs other processes used meanwhile."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            open(stdin_path or os.devnull) as stdin:
        t0, b0 = time.perf_counter(), busy_seconds()
        p = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=out, stderr=err, cwd=REPO)
        _, status, ru = os.wait4(p.pid, 0)
        wall, busy = time.perf_counter() - t0, busy_seconds() - b0
        out.seek(0)
        err.seek(0)
        so, se = out.read().decode(), err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{se[-3000:]}")
    others = max(0.0, busy - ru.ru_utime - ru.ru_stime) / (wall * NCPU)
    return so, se, ru.ru_maxrss / 1024.0, others


def greedy(args, qfile, slots):
    cmd = [args.meteor, "generate", "-m", args.model, "--batch", qfile, "--chat", "--greedy",
           "-n", str(args.tokens), "--slots", str(slots), "--stats", "--quiet",
           "--threads", str(args.threads)]
    so, se, rss, others = run(cmd, args.threads)
    w = re.search(r"(\d+) prompts, (\d+) tokens generated in ([\d.]+) s", se)
    ph = re.search(r"decoding: (\d+) steps, (\d+) tokens in ([\d.]+) s", se)
    if not w or not ph:
        sys.exit(f"unexpected --stats output from meteor generate --batch:\n{se[-2000:]}")
    outs = [json.loads(line) for line in so.splitlines() if line.strip()]
    res = {"what": f"greedy, {slots} at a time", "cmd": " ".join(map(str, cmd)),
           "questions": int(w[1]), "tokens": int(w[2]), "seconds": float(w[3]),
           "decode_steps": int(ph[1]), "step_tokens": int(ph[2]), "decode_seconds": float(ph[3]),
           "texts": [o["text"] for o in outs], "rss_mib": rss, "others": others}
    log(f"  {res['what']}: {res['tokens']} tokens in {res['seconds']:.2f} s "
        f"(others {100 * others:.0f}%)")
    return res


def beam(args, qfile, prompts):
    cmd = [args.beam_tool, "--batch", args.model, str(args.beams), str(args.tokens), "1.0", "0",
           "-", str(args.threads), str(prompts), "--fast"]
    so, se, rss, others = run(cmd, args.threads, qfile)
    out = json.loads(so)
    best = [r["hyps"][0] for r in out["results"]]
    res = {"what": f"beam-{args.beams}, {prompts} at a time", "cmd": " ".join(map(str, cmd)) +
           f" < {Path(qfile).name}", "questions": len(best),
           "tokens": sum(len(h["tokens"]) for h in best), "seconds": out["seconds"],
           "decode_steps": out["stats"]["n_steps"], "step_tokens": out["stats"]["n_step_tokens"],
           "decode_seconds": out["stats"]["decode_seconds"],
           "steps_per_question": [r["n_steps"] for r in out["results"]],
           "texts": [h["text"] for h in best],
           "per_prompt": [(r["hyps"], r["n_steps"]) for r in out["results"]],
           "rss_mib": rss, "others": others}
    log(f"  {res['what']}: {res['tokens']} best-hypothesis tokens in {res['seconds']:.2f} s "
        f"(others {100 * others:.0f}%)")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
    ap.add_argument("--questions", type=int, default=32, help="FAQ questions (32)")
    ap.add_argument("--tokens", type=int, default=256, help="new tokens at most per answer (256)")
    ap.add_argument("--beams", type=int, default=4)
    ap.add_argument("--greedy-slots", type=int, default=16,
                    help="greedy sequences decoded together (16, generate's default)")
    ap.add_argument("--beam-prompts", type=int, default=8,
                    help="questions whose beams are decoded together (8: 32 sequences at 4 beams)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default=str(REPO / "build"), help="folder with meteor and tools/")
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    args = ap.parse_args()
    args.meteor = str(Path(args.build) / "meteor")
    args.beam_tool = str(Path(args.build) / "tools" / "beam_tool")
    for exe in (args.meteor, args.beam_tool):
        if not Path(exe).exists():
            sys.exit(f"{exe} not found: run make")
    print(f"CPU: {cpu_model()}; threads {args.threads}; 1-min load average at start "
          f"{os.getloadavg()[0]:.2f}")
    print(f"model {Path(args.model).name}, {args.questions} FAQ questions (titles, chat template), "
          f"up to {args.tokens} new tokens, beams {args.beams}")
    qs = questions(args.questions)
    results = []
    with tempfile.TemporaryDirectory(prefix="beam_batch_bench_") as d:
        gfile, bfile = Path(d) / "greedy.jsonl", Path(d) / "beam.jsonl"
        gfile.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in qs))
        bfile.write_text("".join(json.dumps({"chat": q}) + "\n" for q in qs))
        g1 = greedy(args, str(gfile), 1)
        gs = greedy(args, str(gfile), args.greedy_slots)
        b1 = beam(args, str(bfile), 1)
        bs = beam(args, str(bfile), args.beam_prompts)
        results = [g1, gs, b1, bs]
    print(f"\nsame outputs batched as one at a time: greedy texts "
          f"{'yes' if g1['texts'] == gs['texts'] else 'NO'}; beam hypotheses (tokens, scores, "
          f"texts, bit for bit) {'yes' if b1['per_prompt'] == bs['per_prompt'] else 'NO'}")
    print(f"\n{'run':<24} {'questions/min':>14} {'answer tokens':>14} {'s':>9} "
          f"{'ms/token':>9} {'vs 1 at a time':>15} {'others':>7}")
    for r, base in ((g1, g1), (gs, g1), (b1, b1), (bs, b1)):
        r["questions_per_min"] = 60 * r["questions"] / r["seconds"]
        r["ms_per_token"] = 1e3 * r["seconds"] / max(r["tokens"], 1)
        speed = r["questions_per_min"] / base["questions_per_min"]
        print(f"{r['what']:<24} {r['questions_per_min']:>14.2f} {r['tokens']:>14} "
              f"{r['seconds']:>9.2f} {r['ms_per_token']:>9.1f} {speed:>14.2f}x "
              f"{100 * r['others']:>6.0f}%")
    print(f"\nbeam-{args.beams} / greedy, time per generated (answer) token: one at a time "
          f"{b1['ms_per_token'] / g1['ms_per_token']:.2f}x, batched "
          f"{bs['ms_per_token'] / gs['ms_per_token']:.2f}x (issue 17's target: <= 2x)")
    def per_question_step(r, rows):
        """Decoding seconds per token position of one question (a beam step feeds N rows)."""
        return r["decode_seconds"] / (r["step_tokens"] / rows)

    print(f"beam-{args.beams} / greedy, decoding time per token position of one question "
          f"(the decoding phase alone): one at a time "
          f"{per_question_step(b1, args.beams) / per_question_step(g1, 1):.2f}x, batched "
          f"{per_question_step(bs, args.beams) / per_question_step(gs, 1):.2f}x")
    print(f"1-min load average at end {os.getloadavg()[0]:.2f}; 'others' is the share of all "
          f"CPUs other processes used during a run (above 10%: the figures are disturbed)")
    for r in results:
        print(f"  {r['what']}: {r['cmd']}")
    if args.json:
        for r in results:
            r.pop("per_prompt", None)
        args.json.write_text(json.dumps({"args": vars(args), "results": results}, indent=1,
                                        default=str))


if __name__ == "__main__":
    main()
