#!/usr/bin/env python3
"""LoRA SFT training benchmark: meteor vs Hugging Face transformers + peft on the CPU.

A benchmark, never a test: it asserts nothing about timings and only prints figures.
See bench/README.md for what is measured and how.

    .venv/bin/python bench/train_bench.py [--steps K] [--quick]

Same model (SmolLM2-135M-Instruct GGUF), same generated data (every example is exactly
--seq-len tokens after the chat template), same LoRA configuration, same optimiser
(AdamW, constant lr, clipping at 1, no weight decay), batch 1, same thread count, all in one
run. Each trainer runs in its own child process; its peak RSS is the kernel's ru_maxrss for
that child (os.wait4). Throughput excludes the first --warmup steps.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TARGETS = ["q", "k", "v", "o", "gate", "up", "down"]
HF_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
EOT = "<|im_end|>"


# ----------------------------------------------------------------------------- helpers

def log(msg):
    print(msg, file=sys.stderr, flush=True)


LOADS = []  # 1-minute load averages seen around each child


def run_child(cmd, env, stdout_path, stderr_path):
    """Runs cmd to completion; returns (exit code, wall seconds, peak RSS in MiB of that child,
    CPU seconds of that child)."""
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        LOADS.append(os.getloadavg()[0])
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=REPO)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        LOADS.append(os.getloadavg()[0])
    p.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux
    return p.returncode, wall, ru.ru_maxrss / 1024.0, ru.ru_utime + ru.ru_stime


def child_env(threads):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    return env


def model_config(path):
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    arch = r.fields["general.architecture"].contents()

    def get(key):
        return r.fields[f"{arch}.{key}"].contents()

    names = {t.name for t in r.tensors}
    return {
        "arch": arch,
        "n_layer": int(get("block_count")),
        "d_model": int(get("embedding_length")),
        "d_ff": int(get("feed_forward_length")),
        "n_head": int(get("attention.head_count")),
        "n_head_kv": int(get("attention.head_count_kv")),
        "vocab": int(get("vocab_size")),
        "tied": "output.weight" not in names,
    }


def flops_per_token(cfg, rank, seq_len):
    """Useful training FLOPs per token of a LoRA step (see bench/README.md for the formula)."""
    d, f, L = cfg["d_model"], cfg["d_ff"], cfg["n_layer"]
    hd = d // cfg["n_head"]
    d_kv = hd * cfg["n_head_kv"]
    # (in, out) of the seven projections of one layer
    shapes = [(d, d), (d, d_kv), (d, d_kv), (d, d), (d, f), (d, f), (f, d)]
    p_layers = L * sum(i * o for i, o in shapes)
    p_head = cfg["vocab"] * d
    p_mat = p_layers + p_head                      # frozen weights every token multiplies
    lora = L * sum(i + o for i, o in shapes)       # rank-1 slice of all adapters
    ctx = (seq_len + 1) / 2.0                      # mean causal context length
    attn_fwd = 4.0 * d * ctx * L                   # QK^T and P·V over the causal context
    parts = {
        "frozen_fwd": 2.0 * p_mat,
        "frozen_bwd_dx": 2.0 * p_mat,
        "lora": 6.0 * rank * lora,
        "attention": 3.0 * attn_fwd,
    }
    parts["total"] = sum(parts.values())
    parts["p_matmul"] = p_mat
    return parts


# ----------------------------------------------------------------------------- data

def smollm_pre_tokenizer():
    """SmolLM2 splits digits before the byte-level regex; transformers' GGUF converter does
    not know its "smollm" pre-tokenizer (same fix as tests/oracle/test_train_data.py)."""
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])


def conversation_ids(tok, question, answer):
    """(ids, n_prompt) of one (question, answer) with the model's chat template, cut after the
    assistant's end-of-turn token, as meteor builds it (tests/oracle/test_train_data.py)."""
    msgs = [{"role": "user", "content": question}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": answer}], tokenize=False)
    assert full.startswith(prompt)
    cut = full[: full.rindex(EOT) + len(EOT)]
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    whole, p = enc(cut), enc(prompt)
    if whole[: len(p)] != p:  # boundary merge: meteor keeps the prompt's own tokens
        whole = p + enc(cut[len(prompt):])
    return whole, len(p)


def make_examples(tok, n, seq_len, seed):
    """n (question, answer) pairs from data/python_faq.jsonl whose templated length is exactly
    seq_len tokens: the question's reference answer followed by other reference answers, cut."""
    faq = []
    with open(REPO / "data" / "python_faq.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                faq.append((r["title"], r["reference_answer"]))
    rng = random.Random(seed)
    order = list(range(len(faq)))
    rng.shuffle(order)
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    out = []
    for j in range(n):
        title, first = faq[order[j % len(order)]]
        parts, pool = [first], [i for i in order if faq[i][1] != first]
        rng.shuffle(pool)
        while len(enc("\n\n".join(parts))) < 2 * seq_len and pool:
            parts.append(faq[pool.pop()][1])
        text = "\n\n".join(parts)
        a_ids = enc(text)
        _, n_prompt = conversation_ids(tok, title, "")
        k = seq_len - n_prompt - 1  # answer tokens + end-of-turn
        for _ in range(20):
            answer = tok.decode(a_ids[:k]).rstrip("\ufffd")
            ids, n_prompt = conversation_ids(tok, title, answer)
            if len(ids) == seq_len:
                break
            k += seq_len - len(ids)
        else:
            raise SystemExit(f"could not build a {seq_len}-token example from {title!r}")
        out.append({"question": title, "answer": answer, "ids": ids, "n_prompt": n_prompt})
    return out


def check_with_meteor(examples, data_path, seq_len):
    """Compares our tokens with build/tools/data_dump (meteor's own loader); a note, not a gate."""
    exe = REPO / "build" / "tools" / "data_dump"
    if not exe.is_file():
        return "build/tools/data_dump missing: tokens not cross-checked"
    proc = subprocess.run([str(exe), str(REPO / "models" / MODEL_FILE), str(data_path),
                           "--max-len", str(seq_len)], capture_output=True, text=True)
    if proc.returncode:
        return f"data_dump failed: {proc.stderr.strip()[:200]}"
    got = json.loads(proc.stdout)
    same = sum(g["tokens"] == e["ids"] and g["n_prompt"] == e["n_prompt"]
               for g, e in zip(got["examples"], examples))
    lens = sorted({len(g["tokens"]) for g in got["examples"]})
    return (f"meteor's loader: {got['n']} examples, lengths {lens}, {got['n_truncated']} truncated; "
            f"{same}/{len(examples)} identical to the transformers tokens and masks")


# ----------------------------------------------------------------------------- meteor

def run_meteor(args, data_path, work, label, extra):
    tag = label.strip("-")
    out_dir = work / f"meteor_{tag}"
    cmd = [str(args.meteor), "train", "-m", str(REPO / "models" / MODEL_FILE),
           "--data", str(data_path), "--out", str(out_dir),
           "--lora-rank", str(args.rank), "--lora-alpha", str(args.alpha), "--lora-dropout", "0",
           "--lora-targets", ",".join(TARGETS), "--batch-size", "1", "--max-len", str(args.seq_len),
           "--max-steps", str(args.steps), "--lr", str(args.lr), "--schedule", "constant",
           "--warmup", "0", "--weight-decay", "0", "--max-grad-norm", "1", "--save-every", "0",
           "--threads", str(args.threads), "--quiet", *extra]
    log(f"[meteor {label}] {' '.join(cmd)}")
    rc, wall, rss, cpu = run_child(cmd, child_env(args.threads), work / f"meteor_{tag}.out",
                              work / f"meteor_{tag}.err")
    if rc:
        err = (work / f"meteor_{tag}.err").read_text(errors="replace")
        raise SystemExit(f"meteor {label} failed (exit {rc}):\n{err[-2000:]}")
    steps = [json.loads(l) for l in (out_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]
    # tokens_per_s = all tokens of the step's micro-batches / step time (src/train/trainer.c)
    times = [args.seq_len / s["tokens_per_s"] for s in steps]
    text = [(work / f"meteor_{tag}.{e}").read_text(errors="replace") for e in ("out", "err")]
    summary = [l for l in "\n".join(text).splitlines() if l.startswith("trained ")]
    return {"label": f"meteor {label}", "cmd": cmd, "step_s": times, "loss": [s["loss"] for s in steps],
            "peak_rss_mib": rss, "wall_s": wall, "cpu_s": cpu, "summary": summary[-1] if summary else ""}


# ----------------------------------------------------------------------------- torch

def torch_worker(spec_path):
    """Runs in its own process: trains with transformers + peft and prints one JSON line."""
    spec = json.loads(Path(spec_path).read_text())
    import gc

    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    import transformers
    import peft

    def status_kib(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    t_load = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(REPO / "models"), gguf_file=MODEL_FILE, dtype=torch.float32)
    cfg = peft.LoraConfig(r=spec["rank"], lora_alpha=spec["alpha"], lora_dropout=0.0,
                          target_modules=HF_TARGETS, bias="none", task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, cfg)
    if spec["recompute"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    load_s = time.perf_counter() - t_load
    gc.collect()
    rss_loaded = status_kib("VmRSS")
    hwm_load = status_kib("VmHWM")
    try:  # reset VmHWM so the training phase's own peak can be read afterwards
        Path("/proc/self/clear_refs").write_text("5")
        hwm_reset = True
    except OSError:
        hwm_reset = False
    examples = spec["examples"]
    times, losses = [], []
    for step in range(spec["steps"]):
        ex = examples[step % len(examples)]
        ids = torch.tensor([ex["ids"]])
        labels = ids.clone()
        labels[0, : ex["n_prompt"]] = -100
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(out.loss.item())
        print(f"step {step + 1}: loss {losses[-1]:.4f} {times[-1]:.2f}s", file=sys.stderr, flush=True)
    print(json.dumps({
        "step_s": times, "loss": losses, "load_s": load_s,
        "rss_loaded_mib": rss_loaded / 1024.0, "hwm_load_mib": hwm_load / 1024.0,
        "hwm_train_mib": status_kib("VmHWM") / 1024.0 if hwm_reset else None,
        "n_trainable": sum(p.numel() for p in params),
        "attn": getattr(model.config, "_attn_implementation", "?"),
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
    }))


def run_torch(args, examples, work, label, recompute):
    spec = {"threads": args.threads, "rank": args.rank, "alpha": args.alpha, "lr": args.lr,
            "steps": args.steps, "recompute": recompute,
            "examples": [{"ids": e["ids"], "n_prompt": e["n_prompt"]} for e in examples]}
    spec_path = work / f"torch_{label}.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--torch-worker", str(spec_path)]
    log(f"[torch {label}] {' '.join(cmd)}")
    rc, wall, rss, cpu = run_child(cmd, child_env(args.threads), work / f"torch_{label}.out",
                              work / f"torch_{label}.err")
    if rc:
        err = (work / f"torch_{label}.err").read_text(errors="replace")
        raise SystemExit(f"torch {label} failed (exit {rc}):\n{err[-3000:]}")
    res = json.loads((work / f"torch_{label}.out").read_text().strip().splitlines()[-1])
    res.update({"label": f"torch+peft {label}", "cmd": cmd, "peak_rss_mib": rss, "wall_s": wall, "cpu_s": cpu})
    return res


# ----------------------------------------------------------------------------- report

def measured(r, warmup, seq_len):
    t = r["step_s"][warmup:] or r["step_s"]
    r["tok_s"] = seq_len * len(t) / sum(t)
    r["median_step_s"] = statistics.median(t)
    return r


def sgemm_peak(threads, work, quick):
    exe = work / "sgemm_peak"
    src = REPO / "bench" / "sgemm_peak.c"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "openblas"],
                           capture_output=True, text=True).stdout.split() or ["-lopenblas"]
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-std=c11", str(src), "-o", str(exe), *flags], check=True)
    env = child_env(threads)
    sizes = [(1024, 1024, 1024)] + ([] if quick else [(2048, 2048, 2048)])
    res = []
    for m, n, k in sizes:
        out = subprocess.run([str(exe), str(m), str(n), str(k), "5" if quick else "10"],
                             env=env, capture_output=True, text=True, check=True).stdout
        res.append(json.loads(out))
    return res


def own_gemm_rate(args):
    """meteor's own GEMM (mt_sgemm) on one core for the gate/up projection's forward shape, and the
    library sgemm beside it, through build/tools/sgemm_bench; None without the tool."""
    exe = Path(args.meteor).parent / "tools" / "sgemm_bench"
    if not exe.exists():
        return None
    out = subprocess.run([str(exe), "0.2", "0", "1", "512", "1536", "576"], capture_output=True,
                         text=True, env=child_env(1)).stdout.splitlines()
    f = out[-1].split() if out else []
    try:
        return {"blas_1core": float(f[-3]), "own_1core": float(f[-2])}
    except (IndexError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps per run (6; quick 3)")
    ap.add_argument("--warmup", type=int, default=None, help="leading steps not timed (1)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer steps, no recompute variants, one sgemm size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--seed", type=int, default=1234, help="seed of the generated data")
    ap.add_argument("--meteor", type=Path, default=REPO / "build" / "meteor",
                    help="meteor binary (build/meteor)")
    ap.add_argument("--no-torch", action="store_true", help="meteor and sgemm only")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    ap.add_argument("--torch-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        return torch_worker(args.torch_worker)
    args.steps = args.steps or (3 if args.quick else 6)
    args.warmup = args.warmup if args.warmup is not None else 1
    if args.steps <= args.warmup:
        raise SystemExit("--steps must exceed --warmup")
    if not args.meteor.is_file():
        raise SystemExit(f"{args.meteor} is missing: run `make` first")
    model_path = REPO / "models" / MODEL_FILE
    if not model_path.is_file():
        raise SystemExit(f"{model_path} is missing: run `bash scripts/setup.sh models`")

    work = Path(tempfile.mkdtemp(prefix="meteor_train_bench_"))
    t_start = time.perf_counter()
    import transformers

    log("building data ...")
    tok = transformers.AutoTokenizer.from_pretrained(str(REPO / "models"), gguf_file=MODEL_FILE)
    tok.backend_tokenizer.pre_tokenizer = smollm_pre_tokenizer()
    n_ex = max(args.steps, 8)
    examples = make_examples(tok, n_ex, args.seq_len, args.seed)
    data_path = work / "data.jsonl"
    data_path.write_text("".join(json.dumps({"question": e["question"], "answer": e["answer"]},
                                            ensure_ascii=False) + "\n" for e in examples))
    data_note = check_with_meteor(examples, data_path, args.seq_len)
    n_trained = statistics.mean(len(e["ids"]) - e["n_prompt"] for e in examples)

    log("measuring sgemm peak ...")
    sg = sgemm_peak(args.threads, work, args.quick)
    peak = max(s["best_gflops"] for s in sg)
    own = own_gemm_rate(args)

    runs = [run_meteor(args, data_path, work, "default", [])]
    if not args.quick:
        runs.append(run_meteor(args, data_path, work, "--recompute", ["--recompute"]))
    if not args.no_torch:
        runs.append(run_torch(args, examples, work, "default", False))
        if not args.quick:
            runs.append(run_torch(args, examples, work, "grad-ckpt", True))
    for r in runs:
        measured(r, args.warmup, args.seq_len)

    cfg = model_config(model_path)
    fl = flops_per_token(cfg, args.rank, args.seq_len)

    # ------------------------------------------------------------------ print
    print(f"meteor train benchmark: {MODEL_FILE}, LoRA r={args.rank} alpha={args.alpha:g} "
          f"targets {','.join(TARGETS)}, dropout 0, AdamW lr {args.lr:g} constant, clip 1, wd 0")
    print(f"  batch 1, {len(examples)} examples of exactly {args.seq_len} tokens "
          f"(mean {n_trained:.0f} answer tokens trained), {args.threads} threads, "
          f"{args.steps} steps, first {args.warmup} not timed")
    print(f"  data: {data_note}")
    print(f"  machine: {os.cpu_count()} CPUs visible; "
          + "; ".join(f"sgemm {s['m']}x{s['n']}x{s['k']} {args.threads} threads: best "
                      f"{s['best_gflops']:.1f} GFLOP/s (median {s['median_gflops']:.1f})" for s in sg))
    print(f"  1-min load average around the runs: {min(LOADS):.2f}..{max(LOADS):.2f}"
          + (f"  ** other processes were competing for the {os.cpu_count()} CPUs: timings are noisy **"
             if max(LOADS) > args.threads + 0.5 else ""))
    print()
    hdr = f"{'run':<24} {'tokens/s':>9} {'s/step':>8} {'peak RSS MiB':>13} {'GFLOP/s':>8} " \
          f"{'% sgemm':>8} {'CPU s':>7} {'wall s':>7} {'loss first->last':>18}"
    print(hdr)
    print("-" * len(hdr))
    for r in runs:
        gf = r["tok_s"] * fl["total"] * 1e-9
        r["gflops"] = gf
        print(f"{r['label']:<24} {r['tok_s']:>9.1f} {r['median_step_s']:>8.3f} "
              f"{r['peak_rss_mib']:>13.1f} {gf:>8.1f} {100 * gf / peak:>7.1f}% "
              f"{r['cpu_s']:>7.1f} {r['wall_s']:>7.1f} "
              f"{r['loss'][0]:>8.4f}->{r['loss'][-1]:<8.4f}")
    print("  tokens/s: all tokens of the timed steps / their time; s/step: median timed step; GFLOP/s:")
    print("  useful FLOPs/token below x tokens/s (recomputed forwards not counted); CPU s, wall s: the")
    print("  whole child process (loading included); peak RSS: the child's ru_maxrss")
    print()
    base = runs[0]
    torch_runs = [r for r in runs if r["label"].startswith("torch")]
    if torch_runs:
        t = torch_runs[0]
        print(f"meteor/torch throughput: {base['tok_s'] / t['tok_s']:.2f}x   (target >= 3x)")
        print(f"meteor/torch peak RSS:   {base['peak_rss_mib'] / t['peak_rss_mib']:.2f}x   "
              f"(target <= 0.5x)")
        if t.get("hwm_train_mib"):
            print(f"  torch process: {t['rss_loaded_mib']:.0f} MiB resident after loading "
                  f"(load peak {t['hwm_load_mib']:.0f} MiB), training-phase peak "
                  f"{t['hwm_train_mib']:.0f} MiB -> meteor/torch vs training-phase peak "
                  f"{base['peak_rss_mib'] / t['hwm_train_mib']:.2f}x")
        print(f"  torch {t['torch']}, transformers {t['transformers']}, peft {t['peft']}, "
              f"attention {t['attn']}, {t['n_trainable']} trainable parameters")
        if len(torch_runs) > 1 and len(runs) > 2:
            rc, tc = runs[1], torch_runs[1]
            print(f"with recomputation (meteor --recompute vs torch gradient checkpointing): "
                  f"throughput {rc['tok_s'] / tc['tok_s']:.2f}x, peak RSS "
                  f"{rc['peak_rss_mib'] / tc['peak_rss_mib']:.2f}x")
    if len(runs) > 1 and runs[1]["label"].endswith("--recompute"):
        rc = runs[1]
        print(f"meteor --recompute vs default: throughput {rc['tok_s'] / base['tok_s']:.2f}x, "
              f"peak RSS {rc['peak_rss_mib'] / base['peak_rss_mib']:.2f}x")
    print(f"FLOPs/token (useful, LoRA): {fl['total'] / 1e6:.1f} M = frozen fwd 2P {fl['frozen_fwd'] / 1e6:.1f} M"
          f" + frozen bwd dX 2P {fl['frozen_bwd_dx'] / 1e6:.1f} M + LoRA {fl['lora'] / 1e6:.1f} M"
          f" + attention {fl['attention'] / 1e6:.1f} M   (P = {fl['p_matmul'] / 1e6:.1f} M matmul weights)")
    print(f"meteor achieved {base['gflops']:.1f} GFLOP/s = {100 * base['gflops'] / peak:.1f}% of the "
          f"measured sgemm {peak:.1f} GFLOP/s")
    if own and own["own_1core"] > 0:
        top = own["own_1core"] * args.threads
        print(f"  meteor's own AVX-512 GEMM, one core, 512x1536x576: {own['own_1core']:.1f} GFLOP/s "
              f"(the BLAS sgemm: {own['blas_1core']:.1f}); x {args.threads} threads = {top:.1f} GFLOP/s,"
              f" of which meteor achieved {100 * base['gflops'] / top:.1f}%")
    print(f"meteor summary line: {base['summary']}")
    print(f"total benchmark time {time.perf_counter() - t_start:.0f} s; work folder {work}"
          + ("" if args.keep else " (removed)"))
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "sgemm": sg, "own_gemm": own,
                                         "flops_per_token": fl,
                                         "model": cfg, "data_note": data_note}, indent=1, default=str))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
