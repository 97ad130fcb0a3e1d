#!/usr/bin/env python3
"""Inference benchmark: meteor vs llama.cpp (llama-cpp-python) on the CPU, same GGUF files.

A benchmark, never a test: it asserts nothing about timings and only prints figures.
See bench/README.md for what is measured and how.

    .venv/bin/python bench/infer_bench.py [--quick] [--model smollm|gemma|qwen05|qwen15]

For every model, both engines, same thread count, in one run:
  - prompt processing of exactly --prompt-len (512) tokens, the same token ids on both sides;
  - greedy generation of --gen (128) tokens at batch 1 after that prompt (prompt time excluded);
  - peak RSS of each engine's process (every run is a child process of its own; os.wait4);
  - meteor only: aggregate tokens/s of `generate --batch` with 16 slots vs 1 slot on the same
    prompts, and beam search (4 beams) time per step over greedy time per token.
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
MODELS = {
    "smollm": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma": "gemma-3-270m-q4_k_m.gguf",
    "qwen05": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "qwen15": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}
PY = REPO / ".venv" / "bin" / "python"


# ----------------------------------------------------------------------------- helpers

def log(msg):
    print(msg, file=sys.stderr, flush=True)


LOADS = []  # 1-minute load averages seen around each child


HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
OTHERS = []  # share of all CPUs used by other processes during each timed child, 0..1


def cpu_busy_seconds():
    """CPU seconds spent busy by the whole machine so far (all CPUs, /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / HZ


def others_share(seconds=1.0):
    """Share of all CPUs that something busied over the next `seconds` (we only sleep)."""
    b0, t0 = cpu_busy_seconds(), time.perf_counter()
    time.sleep(seconds)
    return (cpu_busy_seconds() - b0) / ((time.perf_counter() - t0) * NCPU)


def wait_idle(max_s):
    """Waits up to max_s seconds for a second in which other processes use < 10% of the CPUs."""
    if max_s < 1:
        return
    t0 = time.perf_counter()
    share = others_share()
    told = False
    while share >= 0.10 and time.perf_counter() - t0 < max_s:
        if not told:
            log(f"  waiting up to {max_s:.0f} s for the CPUs to be idle "
                f"(others use {100 * share:.0f}%)")
            told = True
        share = others_share()
    if told:
        log(f"  {'idle' if share < 0.10 else 'still busy'} after "
            f"{time.perf_counter() - t0:.0f} s (others {100 * share:.0f}%)")


def run_child(cmd, env=None, wait_s=0.0):
    """Runs cmd to completion (after waiting up to wait_s seconds for idle CPUs); returns (exit
    code, stdout, stderr, wall s, peak RSS MiB of that child, CPU s of that child, share of all
    CPUs other processes used meanwhile)."""
    wait_idle(wait_s)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        LOADS.append(os.getloadavg()[0])
        b0 = cpu_busy_seconds()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=REPO,
                             stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        busy = cpu_busy_seconds() - b0
        LOADS.append(os.getloadavg()[0])
        out.seek(0)
        err.seek(0)
        so, se = out.read().decode(), err.read().decode()
    rc = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    others = max(0.0, busy - cpu) / (wall * NCPU)
    # ru_maxrss is in KiB on Linux
    return rc, so, se, wall, ru.ru_maxrss / 1024.0, cpu, others


def checked(cmd, env=None, timed=False):
    """Runs cmd, exits on failure. A timed run during which other processes used more than 10%
    of the CPUs is run again, up to --retries times; the least disturbed attempt is returned."""
    best = None
    deadline = time.perf_counter() + (ARGS.wait_idle if timed and ARGS is not None else 0)
    for attempt in range(1 + (ARGS.retries if timed and ARGS is not None else 0)):
        # the waiting budget is shared by the attempts of one run
        rc, so, se, wall, rss, cpu, others = run_child(
            cmd, env, max(0.0, deadline - time.perf_counter()))
        if rc != 0:
            sys.exit(f"failed ({rc}): {' '.join(map(str, cmd))}\n{se[-3000:]}")
        if best is None or others < best[-1]:
            best = (so, se, wall, rss, cpu, others)
        if not timed or others <= 0.10:
            break
        log(f"  other processes used {100 * others:.0f}% of the CPUs during that run: "
            f"{'running it again' if attempt < ARGS.retries else 'keeping the least disturbed'}")
    if timed:
        OTHERS.append(best[-1])
    return best


def child_env(threads):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    return env


def med(xs):
    return statistics.median(xs) if xs else float("nan")


# ----------------------------------------------------------------------------- prompts

def faq_text():
    """The FAQ file's titles and reference answers, in file order: deterministic plain text."""
    parts = []
    for line in (REPO / "data" / "python_faq.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            parts.append(f"{r['title']}\n\n{r['reference_answer']}\n\n")
    return parts


def meteor_tokenize(meteor, model, text, special=True):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    try:
        cmd = [meteor, "tokenize", "-m", model, "-f", f.name, "--json"]
        if not special:
            cmd.append("--no-special")
        so, *_ = checked(cmd)
    finally:
        os.unlink(f.name)
    return json.loads(so)


def meteor_tokenize_batch(meteor, model, texts):
    """Token ids of each text, without BOS/EOS."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(texts, f)
    try:
        so, *_ = checked([meteor, "tokenize", "-m", model, "--batch", f.name, "--no-special",
                          "--json"])
    finally:
        os.unlink(f.name)
    return json.loads(so)


def meteor_decode_batch(meteor, model, id_lists):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(id_lists, f)
    try:
        so, *_ = checked([meteor, "tokenize", "-m", model, "--decode", "--batch", f.name, "--json"])
    finally:
        os.unlink(f.name)
    return json.loads(so)


def build_prompt(meteor, model, n):
    """A text that meteor tokenises to exactly n ids (BOS included where the model adds one), and
    those ids, and whether they are exactly the first ids of the FAQ text. The FAQ text is
    tokenised, cut to n ids and decoded; if the decoded text does not tokenise back to n ids (a
    merge across the cut), a cut a token shorter, padded with a short word, is tried, and so on.
    meteor's generate tokenises the text itself; the caller checks its prompt_tokens."""
    full = "".join(faq_text())
    with_special = meteor_tokenize(meteor, model, full[:20])
    plain = meteor_tokenize(meteor, model, full[:20], special=False)
    n_lead = len(with_special) - len(plain)  # BOS (and nothing else, for these models)
    if with_special[n_lead:] != plain:
        n_lead = 0
    ids = meteor_tokenize(meteor, model, full, special=False)
    body = n - n_lead
    if len(ids) < body:
        sys.exit(f"the FAQ text has only {len(ids)} tokens, fewer than {body}")
    cands = [ids[:k] for k in range(body, max(body - 8, 1), -1)]
    texts = meteor_decode_batch(meteor, model, cands)
    for k_ids, text in zip(cands, texts):
        got = meteor_tokenize(meteor, model, text)
        if len(got) == n:
            return text, got, len(got[n_lead:]) == len(k_ids) and got[n_lead:] == k_ids
        # the round trip changed the count: try a shorter cut (the loop) or pad with a word
        for pad in (" the", " a", ".", " and"):
            got = meteor_tokenize(meteor, model, text + pad)
            if len(got) == n:
                return text + pad, got, False
    sys.exit(f"could not build a prompt of exactly {n} tokens for {model}")


def batch_prompts(meteor, model, n_prompts, n_tokens):
    """n_prompts distinct prompts of n_tokens tokens each (without BOS), one per FAQ entry:
    title, blank line, start of the reference answer."""
    id_lists = []
    for ids in meteor_tokenize_batch(meteor, model, faq_text()):
        if len(ids) >= n_tokens:
            id_lists.append(ids[:n_tokens])
        if len(id_lists) == n_prompts:
            break
    if len(id_lists) < n_prompts:
        sys.exit(f"only {len(id_lists)} FAQ entries have {n_tokens} tokens")
    return meteor_decode_batch(meteor, model, id_lists)


# ----------------------------------------------------------------------------- llama.cpp child

def vm_kib(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def llama_child(spec_path):
    """Runs in a child process of its own: loads the GGUF with llama.cpp, decodes the prompt ids
    as one batch (timed), then greedily generates like meteor's loop: sample from the last logits,
    stop at gen tokens or an end-of-generation token, otherwise decode the sampled token; the
    timed part holds every sample and the (gen - 1) single-token decodes between them. Prints one
    JSON line."""
    spec = json.loads(Path(spec_path).read_text())
    rss_start = vm_kib("VmRSS")
    import numpy as np
    import llama_cpp

    rss_import = vm_kib("VmRSS")
    hwm_import = vm_kib("VmHWM")
    n, gen, threads = len(spec["ids"]), spec["gen"], spec["threads"]
    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=spec["model"], n_threads=threads, n_threads_batch=threads,
                          n_ctx=n + gen + 8, n_batch=max(512, n), n_ubatch=max(512, n),
                          flash_attn=spec["flash_attn"], verbose=False)
    load_s = time.perf_counter() - t0
    rss_loaded = vm_kib("VmRSS")
    ctx = llm._ctx.ctx
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    own_ids = llm.tokenize(spec["text"].encode(), add_bos=True, special=False)

    def argmax():
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)
        return int(np.ctypeslib.as_array(ptr, shape=(n_vocab,)).argmax())

    prompt = (llama_cpp.llama_token * n)(*spec["ids"])
    one = (llama_cpp.llama_token * 1)()
    llama_cpp.llama_perf_context_reset(ctx)
    t0 = time.perf_counter()
    if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(prompt, n)) != 0:
        sys.exit("llama_decode failed on the prompt")
    t1 = time.perf_counter()
    out = []
    while True:
        tok = argmax()
        out.append(tok)
        if len(out) >= gen or llama_cpp.llama_vocab_is_eog(vocab, tok):
            break
        one[0] = tok
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1)) != 0:
            sys.exit("llama_decode failed while generating")
    t2 = time.perf_counter()
    perf = llama_cpp.llama_perf_context(ctx)
    print(json.dumps({
        "prefill_seconds": t1 - t0, "decode_seconds": t2 - t1, "tokens": out,
        "prompt_tokens": n, "own_ids_match": own_ids == spec["ids"],
        "perf": {"t_p_eval_ms": perf.t_p_eval_ms, "n_p_eval": perf.n_p_eval,
                 "t_eval_ms": perf.t_eval_ms, "n_eval": perf.n_eval},
        "load_s": load_s, "rss_start_mib": rss_start / 1024, "rss_import_mib": rss_import / 1024,
        "hwm_import_mib": hwm_import / 1024, "rss_loaded_mib": rss_loaded / 1024,
        "version": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
    }))
    sys.stdout.flush()


# ----------------------------------------------------------------------------- runs

def run_llama(args, model, text, ids, work):
    spec = work / "llama_spec.json"
    spec.write_text(json.dumps({"model": str(model), "ids": ids, "text": text, "gen": args.gen,
                                "threads": args.threads, "flash_attn": args.flash_attn}))
    reps = []
    for i in range(args.reps):
        so, se, wall, rss, cpu, oth = checked([str(PY), __file__, "--llama-child", str(spec)],
                                              child_env(args.threads), timed=True)
        r = json.loads(so.strip().splitlines()[-1])
        r.update(peak_rss_mib=rss, wall_s=wall, cpu_s=cpu, others=oth)
        reps.append(r)
        log(f"  llama.cpp rep {i + 1}: pp {r['prompt_tokens'] / r['prefill_seconds']:.1f} tok/s, "
            f"tg {len(r['tokens']) / r['decode_seconds']:.2f} tok/s, peak RSS {rss:.0f} MiB, "
            f"others {100 * oth:.0f}%")
    return reps


def run_meteor(args, model, prompt_file, extra, label):
    reps = []
    for i in range(args.reps):
        cmd = [args.meteor, "generate", "-m", str(model), "-f", str(prompt_file), "-n",
               str(args.gen), "--json", "--threads", str(args.threads)] + extra
        so, se, wall, rss, cpu, oth = checked(cmd, child_env(args.threads), timed=True)
        r = json.loads(so.strip().splitlines()[-1])
        r.update(peak_rss_mib=rss, wall_s=wall, cpu_s=cpu, others=oth, cmd=" ".join(cmd))
        reps.append(r)
        if "steps" in r:
            log(f"  meteor {label} rep {i + 1}: {r['steps']} steps, "
                f"{1e3 * r['decode_seconds'] / r['steps']:.1f} ms/step, peak RSS {rss:.0f} MiB, "
                f"others {100 * oth:.0f}%")
        else:
            log(f"  meteor {label} rep {i + 1}: pp {r['prompt_tokens'] / r['prefill_seconds']:.1f} "
                f"tok/s, tg {len(r['tokens']) / r['decode_seconds']:.2f} tok/s, "
                f"peak RSS {rss:.0f} MiB, others {100 * oth:.0f}%")
    return reps


def run_meteor_batch(args, model, batch_file, slots):
    cmd = [args.meteor, "generate", "-m", str(model), "--batch", str(batch_file), "--slots",
           str(slots), "--greedy", "-n", str(args.batch_gen), "--stats", "--threads",
           str(args.threads)]
    so, se, wall, rss, cpu, oth = checked(cmd, child_env(args.threads), timed=True)
    line = [l for l in se.splitlines() if "tokens generated in" in l][-1]
    # "[P prompts, G tokens generated in S s: X tok/s with N slots]"
    w = re.search(r"(\d+) prompts, (\d+) tokens generated in ([\d.]+) s: ([\d.]+) tok/s", line)
    if not w:
        sys.exit(f"unexpected --stats line from meteor --batch: {line}")
    # "[prefill: P prompt tokens in S s (X tok/s); decoding: N steps, T tokens in S s (X tok/s)]"
    ph = [re.search(r"prefill: (\d+) prompt tokens in ([\d.]+) s .*decoding: (\d+) steps, "
                    r"(\d+) tokens in ([\d.]+) s", l) for l in se.splitlines()]
    ph = [x for x in ph if x]
    if not ph:
        sys.exit("meteor --batch --stats printed no prefill/decoding line")
    ph = ph[-1]
    res = {"prompts": int(w[1]), "generated": int(w[2]), "seconds": float(w[3]),
           "prompt_tokens": int(ph[1]), "prefill_s": float(ph[2]), "steps": int(ph[3]),
           "step_tokens": int(ph[4]), "decode_s": float(ph[5]),
           "decode_tok_s": int(ph[4]) / float(ph[5]),
           "tok_s": int(w[2]) / float(w[3]), "slots": slots, "peak_rss_mib": rss, "wall_s": wall,
           "others": oth,
           "cpu_s": cpu, "cmd": " ".join(cmd), "stats_line": line,
           "n_outputs": len([l for l in so.splitlines() if l.strip()])}
    log(f"  meteor --batch --slots {slots}: {res['generated']} tokens in {res['seconds']:.2f} s, "
        f"{res['tok_s']:.2f} tok/s, peak RSS {rss:.0f} MiB, others {100 * oth:.0f}%")
    return res


def pp(r):
    return r["prompt_tokens"] / r["prefill_seconds"]


def tg(r):
    return len(r["tokens"]) / r["decode_seconds"]


def bench_model(args, name, work):
    model = REPO / "models" / MODELS[name]
    log(f"== {MODELS[name]}")
    text, ids, round_trip = build_prompt(args.meteor, model, args.prompt_len)
    prompt_file = work / f"{name}_prompt.txt"
    prompt_file.write_text(text)
    res = {"model": MODELS[name], "prompt_tokens": len(ids), "prompt_round_trip": round_trip}

    res["meteor"] = run_meteor(args, model, prompt_file, ["--greedy"], "greedy")
    for r in res["meteor"]:
        if r["prompt_tokens"] != args.prompt_len:
            sys.exit(f"meteor saw {r['prompt_tokens']} prompt tokens, not {args.prompt_len}")
    if not args.no_llama:
        res["llama"] = run_llama(args, model, text, ids, work)
    if args.precise:
        res["meteor_precise"] = run_meteor(args, model, prompt_file, ["--greedy", "--precise"],
                                           "greedy --precise")
    if not args.no_beam:
        res["beam"] = run_meteor(args, model, prompt_file, ["--beams", str(args.beams)],
                                 f"--beams {args.beams}")
    if not args.no_batch:
        prompts = batch_prompts(args.meteor, model, args.batch_prompts, args.batch_prompt_len)
        bf = work / f"{name}_batch.jsonl"
        bf.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
        res["batch"] = run_meteor_batch(args, model, bf, args.slots)
        res["batch1"] = run_meteor_batch(args, model, bf, 1)
    return res


# ----------------------------------------------------------------------------- report

def disturbed(runs):
    """A mark for figures from runs during which other processes used > 10% of the CPUs."""
    worst = max([r["others"] for r in runs] + [0.0])
    if worst <= 0.10:
        return ""
    return f"  [DISTURBED: others used up to {100 * worst:.0f}% of the CPUs]"


def report(args, results):
    T = args.threads
    print()
    print(f"meteor inference benchmark: {T} threads, prompt {args.prompt_len} tokens, generation "
          f"{args.gen} tokens greedy at batch 1, median of {args.reps} run(s) per figure, "
          f"each run a fresh process")
    ver = next((r["llama"][0] for r in results if r.get("llama")), None)
    if ver:
        print(f"  llama.cpp: llama-cpp-python {ver['version']}, flash_attn "
              f"{'on' if args.flash_attn else 'off'}; {ver['system_info']}")
    print(f"  1-min load average: start {LOAD_START:.2f}, end {os.getloadavg()[0]:.2f}, "
          f"around the runs {min(LOADS):.2f}..{max(LOADS):.2f} on {NCPU} CPUs (lags; counts "
          f"these runs too)")
    if OTHERS:
        print(f"  other processes' share of all CPUs during the timed runs: "
              f"{100 * min(OTHERS):.0f}..{100 * max(OTHERS):.0f}% (median "
              f"{100 * med(OTHERS):.0f}%; /proc/stat busy time minus the run's own CPU time)"
              + ("  ** BUSY: timings are unreliable **" if busy() else ""))
    for res in results:
        print()
        m, L = res["meteor"], res.get("llama")
        print(f"{res['model']}: {res['prompt_tokens']} prompt tokens "
              f"(meteor text round trip {'exact' if res['prompt_round_trip'] else 'padded'}"
              + (f"; llama.cpp's own tokeniser gives the same ids: "
                 f"{'yes' if L[0]['own_ids_match'] else 'NO'}" if L else "") + ")")
        hdr = f"  {'':<34} {'meteor':>10} {'llama.cpp':>10} {'ratio':>7}  target"
        print(hdr)
        print("  " + "-" * (len(hdr) - 2))

        def row(label, a, b, fmt, target, runs=()):
            ratio = a / b if b else float("nan")
            bs = f"{b:>10{fmt}}" if b is not None else f"{'-':>10}"
            rs = f"{ratio:>6.2f}x" if b is not None else f"{'':>7}"
            print(f"  {label:<34} {a:>10{fmt}} {bs} {rs}  {target}{disturbed(runs)}")
            return ratio if b is not None else None

        res["ratio_pp"] = row(f"prompt processing {args.prompt_len} tok/s", med([pp(r) for r in m]),
                              med([pp(r) for r in L]) if L else None, ".1f", ">= 1.0x",
                              m + (L or []))
        res["ratio_tg"] = row(f"generation {args.gen} tok/s (batch 1)", med([tg(r) for r in m]),
                              med([tg(r) for r in L]) if L else None, ".2f", ">= 1.0x",
                              m + (L or []))
        res["ratio_rss"] = row("peak RSS MiB (whole process)", med([r["peak_rss_mib"] for r in m]),
                               med([r["peak_rss_mib"] for r in L]) if L else None, ".1f", "")
        if L:
            base = med([r["hwm_import_mib"] for r in L])
            row("  llama.cpp minus Python+imports", med([r["peak_rss_mib"] for r in m]),
                med([r["peak_rss_mib"] for r in L]) - base, ".1f",
                f"(interpreter + numpy + llama_cpp: {base:.1f} MiB)")
            gm = [len(r["tokens"]) for r in m]
            gl = [len(r["tokens"]) for r in L]
            same = 0
            for a, b in zip(m[0]["tokens"], L[0]["tokens"]):
                if a != b:
                    break
                same += 1
            print(f"  tokens generated: meteor {gm[0]} (stop: {m[0]['stop']}), llama.cpp {gl[0]}; "
                  f"greedy tokens identical for the first {same}")
            pl = med([r["perf"]["n_p_eval"] * 1e3 / r["perf"]["t_p_eval_ms"] for r in L])
            el = med([r["perf"]["n_eval"] * 1e3 / r["perf"]["t_eval_ms"] for r in L
                      if r["perf"]["t_eval_ms"] > 0])
            print(f"  (llama.cpp's own perf counters, decode calls only: prompt {pl:.1f} tok/s, "
                  f"eval {el:.2f} tok/s)")
        def share(rs):
            xs = [100 * r["others"] for r in rs]
            return f"{min(xs):.0f}..{max(xs):.0f}%" if len(xs) > 1 else f"{xs[0]:.0f}%"

        parts = [f"meteor greedy {share(m)}"] + ([f"llama.cpp {share(L)}"] if L else [])
        if res.get("beam"):
            parts.append(f"beam {share(res['beam'])}")
        if res.get("batch"):
            parts.append(f"batch {share([res['batch'], res['batch1']])}")
        print("  other processes' share of the CPUs during the runs: " + ", ".join(parts))
        if res.get("meteor_precise"):
            mp = res["meteor_precise"]
            print(f"  meteor --precise: prompt {med([pp(r) for r in mp]):.1f} tok/s, generation "
                  f"{med([tg(r) for r in mp]):.2f} tok/s")
        if res.get("batch"):
            b, b1 = res["batch"], res["batch1"]
            res["ratio_batch"] = b["tok_s"] / b1["tok_s"]
            print(f"  meteor --batch, {b['prompts']} prompts of {args.batch_prompt_len} tokens, "
                  f"{args.batch_gen} tokens each: {args.slots} slots {b['tok_s']:.2f} tok/s "
                  f"({b['generated']} tokens in {b['seconds']:.2f} s, peak RSS "
                  f"{b['peak_rss_mib']:.0f} MiB) vs 1 slot {b1['tok_s']:.2f} tok/s "
                  f"({b1['generated']} in {b1['seconds']:.2f} s): {res['ratio_batch']:.2f}x  "
                  f"(target >= 4x){disturbed([b, b1])}")
            # The same runs split into their two phases: prefilling the prompts is the same
            # work with 16 slots or 1 (prompt speed is measured above); decoding is where
            # batching pays.
            res["ratio_batch_decode"] = b["decode_tok_s"] / b1["decode_tok_s"]
            print(f"    of which prefill (same work in both): {b['prompt_tokens']} prompt tokens in "
                  f"{b['prefill_s']:.2f} s vs {b1['prefill_s']:.2f} s; decoding phase only: "
                  f"{args.slots} slots {b['decode_tok_s']:.2f} tok/s ({b['step_tokens']} tokens, "
                  f"{b['steps']} steps, {b['decode_s']:.2f} s) vs 1 slot "
                  f"{b1['decode_tok_s']:.2f} tok/s ({b1['decode_s']:.2f} s): "
                  f"{res['ratio_batch_decode']:.2f}x")
        if res.get("beam"):
            bm = res["beam"]
            beam_ms = med([1e3 * r["decode_seconds"] / r["steps"] for r in bm])
            greedy_ms = med([1e3 * r["decode_seconds"] / len(r["tokens"]) for r in m])
            res["ratio_beam"] = beam_ms / greedy_ms
            print(f"  meteor --beams {args.beams}: {beam_ms:.2f} ms per step ({bm[0]['steps']} "
                  f"steps, best stop: {bm[0]['stop']}) vs greedy {greedy_ms:.2f} ms per token: "
                  f"{res['ratio_beam']:.2f}x  (target <= 2.5x){disturbed(bm + m)}")
    print()
    print("  prompt tok/s: prompt tokens / time of the one batched forward over them (meteor's")
    print("  prefill_seconds; llama_decode on the whole prompt); generation tok/s: tokens")
    print("  generated / time from the end of the prompt to the last token (every greedy sample")
    print("  and the single-token forwards between them); peak RSS: ru_maxrss of the engine's")
    print("  process (loading included; the GGUF is mmap'ed by both, touched pages count)")


LOAD_START = 0.0
ARGS = None


def busy():
    """Busy: other processes used more than 10% of the CPUs during some timed run. (The load
    average is printed too, but it lags by a minute and counts this benchmark's own runs.)"""
    return max(OTHERS + [0.0]) > 0.10


def main():
    global LOAD_START, ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes: prompt 128, generation 32, batch 16 prompts x 32, 1 rep")
    ap.add_argument("--model", choices=sorted(MODELS), action="append",
                    help="benchmark only this model (repeatable; default: all)")
    ap.add_argument("--meteor", default=str(REPO / "build" / "meteor"), help="meteor binary")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-len", type=int, help="prompt tokens (512; quick 128)")
    ap.add_argument("--gen", type=int, help="tokens generated at batch 1 (128; quick 32)")
    ap.add_argument("--reps", type=int, help="runs per batch-1 figure, median taken (3; quick 1)")
    ap.add_argument("--beams", type=int, default=4)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--batch-prompts", type=int, help="prompts in the --batch file (32; quick 16)")
    ap.add_argument("--batch-prompt-len", type=int, default=64, help="tokens per batch prompt (64)")
    ap.add_argument("--batch-gen", type=int, help="tokens per batch sequence (128; quick 32)")
    ap.add_argument("--wait-idle", type=float, default=60,
                    help="before each timed run, wait up to this many seconds (in all, retries "
                         "included) for a second in which other processes use < 10%% of the "
                         "CPUs (60; 0 = never wait)")
    ap.add_argument("--retries", type=int, default=2,
                    help="run a timed run again, up to this many times, when other processes "
                         "used > 10%% of the CPUs during it (2)")
    ap.add_argument("--flash-attn", action="store_true", help="llama.cpp with flash attention")
    ap.add_argument("--precise", action="store_true", help="also run meteor --precise")
    ap.add_argument("--no-llama", action="store_true")
    ap.add_argument("--no-beam", action="store_true")
    ap.add_argument("--no-batch", action="store_true")
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument("--llama-child", help=argparse.SUPPRESS)
    args = ARGS = ap.parse_args()
    if args.llama_child:
        return llama_child(args.llama_child)
    q = args.quick
    for k, full, quick in (("prompt_len", 512, 128), ("gen", 128, 32), ("reps", 3, 1),
                           ("batch_prompts", 32, 16), ("batch_gen", 128, 32)):
        if getattr(args, k) is None:
            setattr(args, k, quick if q else full)
    if not Path(args.meteor).exists():
        sys.exit(f"{args.meteor} not found: run make")
    LOAD_START = os.getloadavg()[0]
    now = others_share()
    print(f"1-min load average at start: {LOAD_START:.2f} on {NCPU} CPUs; other processes use "
          f"{100 * now:.0f}% of the CPUs right now"
          + ("  ** the machine is busy now: timings may be unreliable **" if now > 0.10 else
             "  ** load above 0.5: something ran in the last minute; timings may be unreliable **"
             if LOAD_START > 0.5 else ""), flush=True)
    t_start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="infer_bench_") as d:
        for name in args.model or MODELS:
            results.append(bench_model(args, name, Path(d)))
    report(args, results)
    end = os.getloadavg()[0]
    print(f"1-min load average at end: {end:.2f}; "
          + ("** the machine was busy during some runs (marked DISTURBED): timings are "
             "unreliable **" if busy() else
             f"other processes used at most {100 * max(OTHERS + [0.0]):.0f}% of the CPUs during "
             f"the timed runs"))
    print(f"total benchmark time {time.perf_counter() - t_start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()
                                                  if k != "json"}, "results": results,
                                         "loads": LOADS}, indent=1, default=str))


if __name__ == "__main__":
    main()
