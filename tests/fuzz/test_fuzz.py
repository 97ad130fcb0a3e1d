"""A bounded, seeded fuzz stage: mutants of every input meteor reads, run through the verbs
that read them, under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/meteor).

Inputs (target names in MUTANTS) and the verbs they go through:
  gguf-llama, gguf-gemma  a GGUF model (llama with a byte-level BPE vocabulary, gemma3 with a
      SentencePiece-style one) -> info, generate (plain and --chat), tokenize (and --decode)
  hf-folder  a Hugging Face folder (config.json, tokenizer.json, tokenizer_config.json,
      model.safetensors) -> the same verbs
  questions  METEOR question JSONL -> distill --dry-run (imports the questions, opens the
      weak model, sends nothing; the expert URL is unreachable anyway)
  train-sft, train-pref  training JSONL -> train --max-steps 1 (sft, margin, dpo)
  yaml-generate, yaml-train  YAML configs -> generate --config, train --config (flags after
      --config pin what would make a run long: tokens, steps, threads, quiet)
  batch-prompts  generate --batch JSONL (plain and --chat)
  adapter  a PEFT LoRA folder -> generate --adapter, export (PEFT, GGUF-LoRA, --merge)
  checkpoint  a training checkpoint -> train --resume
Seeds are small valid files built by tests/fuzz/seeds.py and the bundled data/ files;
mutators (tests/fuzz/mutators.py) flip, insert, cut and overwrite bytes, and change one
thing a parser or a kernel must cope with (a GGUF count, type, length, dimension or offset;
a metadata value; a tensor stored in another type or holding NaNs; a JSON value's type or
size; a safetensors entry; a JSONL line; a YAML value).

Each run must exit 0, or exit non-zero with exactly one stderr line `meteor: error: ...`
(after any `meteor: warning: ...` lines about fallbacks it accepted);
never by a signal, never with a sanitizer report, never asking for more than 2 GiB at once
(from inputs of a few hundred kilobytes that is a size taken on trust), never running past
RUN_TIMEOUT_S (a hang). Mutant k of a target comes from random.Random("<target>:<k>"), so
every run of the stage runs the same mutants. A failing mutant's files stay in its folder
under pytest's temporary directory and the failure shows the command that reproduces it.

Budget: MUTANTS (1670 runs) is sized for a minute or two on a 2-core machine: a run takes
about 0.1 s under ASan, two run at a time. METEOR_FUZZ_SCALE=4 runs four times as many
(mutants 0 .. 4n-1 of each target), METEOR_FUZZ_JOBS sets how many run at a time.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from fuzz import mutators, seeds

MUTANTS = {
    "gguf-llama": 300,
    "gguf-gemma": 200,
    "hf-folder": 400,
    "questions": 120,
    "train-sft": 100,
    "train-pref": 60,
    "yaml-generate": 100,
    "yaml-train": 60,
    "batch-prompts": 100,
    "adapter": 150,
    "checkpoint": 80,
}
SCALE = float(os.environ.get("METEOR_FUZZ_SCALE", "1"))
JOBS = int(os.environ.get("METEOR_FUZZ_JOBS", "2"))
RUN_TIMEOUT_S = 30
SANITIZER_EXIT = 86

# Reports abort the run with a distinct exit code. An allocation over 2 GiB returns NULL
# (ASan warns; judge() flags it) instead of aborting, and a run whose memory grows past
# 2 GiB is stopped with a report instead of exhausting the machine.
SAN_ENV = {
    "ASAN_OPTIONS": f"exitcode={SANITIZER_EXIT}:detect_leaks=1:allocator_may_return_null=1:"
                    "max_allocation_size_mb=2048:hard_rss_limit_mb=2048:symbolize=1:"
                    "abort_on_error=0",
    "UBSAN_OPTIONS": f"exitcode={SANITIZER_EXIT}:halt_on_error=1:print_stacktrace=1",
    "LSAN_OPTIONS": f"exitcode={SANITIZER_EXIT}",
    "OMP_NUM_THREADS": "1",
}
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "Sanitizer:", "SUMMARY: ")

PROMPT = "hello the world 123 <|im_start|> é"
DECODE_IDS = "0 1 2 5 32 104 256 259 263 264 265"  # valid in every seed vocabulary


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory, repo_root, meteor_asan_bin):
    """The valid seeds on disk that the targets read besides their mutant: the models, the
    training data, and a training run killed after its first checkpoint (to resume)."""
    d = tmp_path_factory.mktemp("fuzz-seeds")
    (d / "llama.gguf").write_bytes(seeds.gguf_llama_bpe().encode()[0])
    (d / "gemma.gguf").write_bytes(seeds.gguf_gemma_spm().encode()[0])
    hf = d / "hf"
    hf.mkdir()
    for name, data in seeds.hf_folder_files().items():
        (hf / name).write_bytes(data)
    (d / "sft.jsonl").write_bytes(seeds.sft_lines(repo_root))
    env = dict(os.environ, **SAN_ENV, METEOR_FAULT_KILL="checkpoint_saved:1")
    p = subprocess.run([str(repo_root / meteor_asan_bin), *checkpoint_argv(d, d / "ckpt")], env=env,
                       capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert p.returncode == -9 and (d / "ckpt" / "checkpoint.safetensors").is_file(), p.stderr
    return d


# ---- the targets: (rng, mutant folder, seed folder, k) -> (argv after `meteor`, description)


def model_argv(model, k):
    """The verbs that read a model, in turn: info, generate (plain, --chat), tokenize
    (encode, --decode)."""
    m = str(model)
    verbs = [
        ["info", "-m", m],
        ["generate", "-m", m, "-p", PROMPT, "-n", "2", "--greedy", "-t", "1"],
        ["tokenize", "-m", m, "-p", PROMPT],
        ["generate", "-m", m, "-p", PROMPT, "-n", "2", "--chat", "--seed", "3", "-t", "1"],
        ["tokenize", "-m", m, "--decode", "-p", DECODE_IDS],
    ]
    return verbs[k % len(verbs)]


def gguf_target(make_seed):
    seed = make_seed()

    def make(rng, d, _seeds, k):
        data, what = mutators.mutate_gguf(rng, seed)
        path = d / "model.gguf"
        path.write_bytes(data)
        return model_argv(path, k), what

    return make


def hf_target():
    seed_files = seeds.hf_folder_files()

    def make(rng, d, _seeds, k):
        files, what = mutators.mutate_hf(rng, seed_files)
        folder = d / "hf"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return model_argv(folder, k), what

    return make


def questions_target(repo_root):
    seed = seeds.question_lines(repo_root)

    def make(rng, d, s, k):
        data, what = mutators.mutate_jsonl(rng, seed)
        q = d / "questions.jsonl"
        q.write_bytes(data)
        return ["distill", "--run", str(d / "run"), "-m", str(s / "llama.gguf"),
                "--questions", str(q), "--expert-url", "http://127.0.0.1:9/v1",
                "--expert-model", "m", "--dry-run", "--quiet", "-t", "1"], what

    return make


TRAIN_FLAGS = ["--max-steps", "1", "--quiet", "-t", "1", "--lora-rank", "2", "--max-len", "64",
               "--batch-size", "2"]
TRAIN_MODELS = ["llama.gguf", "gemma.gguf", "hf"]


def train_target(repo_root, kind):
    seed = seeds.sft_lines(repo_root) if kind == "sft" else seeds.pref_lines(repo_root)

    def make(rng, d, s, k):
        data, what = mutators.mutate_jsonl(rng, seed)
        f = d / "data.jsonl"
        f.write_bytes(data)
        loss = "sft" if kind == "sft" else ("margin", "dpo")[k % 2]
        return ["train", "-m", str(s / TRAIN_MODELS[k % 3]), "--data", str(f), "--out",
                str(d / "out"), "--loss", loss, *TRAIN_FLAGS], what

    return make


def yaml_target(verb):
    seed = seeds.generate_yaml() if verb == "generate" else seeds.train_yaml()

    def make(rng, d, s, k):
        data, what = mutators.mutate_yaml(rng, seed)
        f = d / "config.yaml"
        f.write_bytes(data)
        model = str(s / TRAIN_MODELS[k % 3])
        if verb == "generate":
            argv = ["generate", "--config", str(f), "-m", model, "-p", PROMPT, "-n", "2",
                    "-t", "1"]
        else:
            argv = ["train", "--config", str(f), "-m", model, "--data", str(s / "sft.jsonl"),
                    "--out", str(d / "out"), "--max-steps", "1", "--quiet", "-t", "1"]
        return argv, what

    return make


def batch_target():
    seed = seeds.batch_prompt_lines()

    def make(rng, d, s, k):
        data, what = mutators.mutate_jsonl(rng, seed)
        f = d / "prompts.jsonl"
        f.write_bytes(data)
        return batch_target_argv(s / TRAIN_MODELS[k % 3], f, k % 2), what

    return make


def batch_target_argv(model, prompts, chat):
    return ["generate", "-m", str(model), "--batch", str(prompts), "-n", "2", "--greedy",
            "--slots", "2", "--quiet", "-t", "1", *(["--chat"] if chat else [])]


def adapter_target():
    seed_files = seeds.adapter_files()

    def make(rng, d, s, k):
        files, what = mutators.mutate_adapter(rng, seed_files)
        a = d / "adapter"
        a.mkdir()
        for name, data in files.items():
            (a / name).write_bytes(data)
        return adapter_argv(s / TRAIN_MODELS[k % 3], a, d, k), what

    return make


def adapter_argv(model, adapter, out, k):
    """The verbs that read an adapter, in turn: generate with it, export it as PEFT or
    GGUF-LoRA, merge it into the model."""
    m, a = str(model), str(adapter)
    verbs = [
        ["generate", "-m", m, "--adapter", a, "-p", PROMPT, "-n", "2", "--greedy", "-t", "1"],
        ["export", "-m", m, "--adapter", a, "--out", str(out / "peft")],
        ["export", "-m", m, "--adapter", a, "--format", "gguf-lora", "--out",
         str(out / "lora.gguf")],
        ["export", "-m", m, "--adapter", a, "--merge", "--type", "q8_0", "--out",
         str(out / "merged.gguf"), "-t", "1"],
    ]
    return verbs[k % len(verbs)]


def checkpoint_argv(s, out):
    """A two-step run that saves after each step; the seed run was killed after the first."""
    return ["train", "-m", str(s / "llama.gguf"), "--data", str(s / "sft.jsonl"), "--out",
            str(out), "--save-every", "1", *TRAIN_FLAGS[2:], "--max-steps", "2"]


def checkpoint_target():
    def make(rng, d, s, k):
        out = d / "out"
        shutil.copytree(s / "ckpt", out)
        ckpt = out / "checkpoint.safetensors"
        data, what = mutators.mutate_checkpoint(rng, ckpt.read_bytes())
        ckpt.write_bytes(data)
        return checkpoint_argv(s, out) + ["--resume"], what

    return make


def targets(repo_root):
    return {
        "gguf-llama": gguf_target(seeds.gguf_llama_bpe),
        "gguf-gemma": gguf_target(seeds.gguf_gemma_spm),
        "hf-folder": hf_target(),
        "questions": questions_target(repo_root),
        "train-sft": train_target(repo_root, "sft"),
        "train-pref": train_target(repo_root, "pref"),
        "yaml-generate": yaml_target("generate"),
        "yaml-train": yaml_target("train"),
        "batch-prompts": batch_target(),
        "adapter": adapter_target(),
        "checkpoint": checkpoint_target(),
    }


# ---- running one mutant ---------------------------------------------------------------------


def judge(proc_or_timeout) -> str | None:
    """None if the run is acceptable, else what is wrong with it."""
    if proc_or_timeout is None:
        return f"hang: no exit within {RUN_TIMEOUT_S} s"
    p = proc_or_timeout
    if any(m in p.stderr for m in SANITIZER_MARKS):
        return "sanitizer report"
    if "failed to allocate" in p.stderr:
        return "asked for over 2 GiB at once (ASan's max_allocation_size_mb refused it)"
    if p.returncode < 0:
        return f"killed by signal {-p.returncode}"
    if p.returncode == 0:
        return None
    # Lines as a terminal shows them (str.splitlines would also break at \x1c-\x1e, \x85);
    # warnings about accepted fallbacks may come before the error.
    lines = [l for l in p.stderr.split("\n")
             if l.strip() and not l.startswith("meteor: warning: ")]
    if len(lines) != 1 or not lines[0].startswith("meteor: error: "):
        return f"exit {p.returncode} without exactly one `meteor: error:` line on stderr"
    return None


def run_one(exe, argv, cwd):
    env = dict(os.environ, **SAN_ENV)
    try:
        return subprocess.run([str(exe), *argv], cwd=cwd, env=env, capture_output=True,
                              text=True, errors="replace", timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None


def report(target, k, what, argv, exe, d, result, why):
    cmd = " ".join(shlex.quote(a) for a in [str(exe), *argv])
    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in SAN_ENV.items())
    out = [f"--- {target} mutant {k}: {why}",
           f"    mutation: {what}",
           f"    files:    {d}",
           f"    command:  (cd {shlex.quote(str(d))} && {envs} {cmd})"]
    if result is not None:
        tail = result.stderr.strip().splitlines()[-25:]
        out.append(f"    exit {result.returncode}; stderr (last {len(tail)} lines):")
        out += ["      " + l[:300] for l in tail]
    return "\n".join(out)


@pytest.mark.parametrize("target", list(MUTANTS))
def test_mutants_are_rejected_cleanly(target, meteor_asan_bin, repo_root, seed_dir, tmp_path):
    exe = repo_root / meteor_asan_bin  # runs start in the mutant's folder
    make = targets(repo_root)[target]
    n = max(1, round(MUTANTS[target] * SCALE))
    jobs = []
    for k in range(n):
        rng = random.Random(f"{target}:{k}")
        d = tmp_path / f"{target}-{k}"
        d.mkdir()
        argv, what = make(rng, d, seed_dir, k)
        jobs.append((k, d, argv, what))

    def run(job):
        k, d, argv, what = job
        result = run_one(exe, argv, d)
        why = judge(result)
        if why is None:
            shutil.rmtree(d, ignore_errors=True)
            return result.returncode == 0, None
        return False, report(target, k, what, argv, exe, d, result, why)

    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        outcomes = list(pool.map(run, jobs))
    failures = [f for _, f in outcomes if f]
    accepted = sum(ok for ok, _ in outcomes)
    print(f"\n[fuzz] {target}: {n} mutants: {accepted} accepted, "
          f"{n - accepted - len(failures)} rejected cleanly, {len(failures)} failed")
    if failures:
        pytest.fail(f"{len(failures)} of {n} {target} mutants failed:\n" + "\n".join(failures),
                    pytrace=False)


def test_seeds_are_accepted(meteor_asan_bin, repo_root, seed_dir, tmp_path):
    """The unmutated seeds pass every verb, so each mutant tests its one change."""
    runs = [model_argv(seed_dir / m, k) for m in TRAIN_MODELS for k in range(5)]
    q = tmp_path / "q.jsonl"
    q.write_bytes(seeds.question_lines(repo_root))
    pref = tmp_path / "pref.jsonl"
    pref.write_bytes(seeds.pref_lines(repo_root))
    gen_yaml, train_yaml = tmp_path / "gen.yaml", tmp_path / "train.yaml"
    gen_yaml.write_bytes(seeds.generate_yaml())
    train_yaml.write_bytes(seeds.train_yaml())
    runs += [
        ["distill", "--run", str(tmp_path / "run"), "-m", str(seed_dir / "llama.gguf"),
         "--questions", str(q), "--expert-url", "http://127.0.0.1:9/v1", "--expert-model", "m",
         "--dry-run", "--quiet", "-t", "1"],
        ["train", "-m", str(seed_dir / "hf"), "--data", str(seed_dir / "sft.jsonl"), "--out",
         str(tmp_path / "o1"), *TRAIN_FLAGS],
        ["train", "-m", str(seed_dir / "gemma.gguf"), "--data", str(pref), "--out",
         str(tmp_path / "o2"), "--loss", "dpo", *TRAIN_FLAGS],
        ["generate", "--config", str(gen_yaml), "-m", str(seed_dir / "llama.gguf"), "-p", PROMPT],
        ["train", "--config", str(train_yaml), "-m", str(seed_dir / "llama.gguf"), "--data",
         str(seed_dir / "sft.jsonl"), "--out", str(tmp_path / "o3"), "--max-steps", "1"],
    ]
    batch = tmp_path / "prompts.jsonl"
    batch.write_bytes(seeds.batch_prompt_lines())
    runs += [batch_target_argv(seed_dir / m, batch, chat) for m in TRAIN_MODELS
             for chat in (False, True)]
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for name, data in seeds.adapter_files().items():
        (adapter / name).write_bytes(data)
    runs += [adapter_argv(seed_dir / m, adapter, tmp_path, k)
             for k, m in enumerate(TRAIN_MODELS + TRAIN_MODELS[:1])]
    shutil.copytree(seed_dir / "ckpt", tmp_path / "ckpt")
    runs.append(checkpoint_argv(seed_dir, tmp_path / "ckpt") + ["--resume"])
    for argv in runs:
        p = run_one(repo_root / meteor_asan_bin, argv, tmp_path)
        assert p is not None and p.returncode == 0, (argv, p and p.stderr[-3000:])
        assert not any(m in p.stderr for m in SANITIZER_MARKS), p.stderr[-3000:]
