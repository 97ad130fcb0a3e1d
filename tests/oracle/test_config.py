"""`--config FILE.yaml`: a flat mapping of the same settings the flags take. A training run
configured by file ends bit-identical to the same run configured by flags, later flags
override the file, and a bad file gives one clear error naming file and line."""

import json

import pytest


@pytest.fixture(scope="module")
def data(tmp_path_factory, repo_root):
    rows = [json.loads(l) for l in open(repo_root / "data" / "python_faq_sample.jsonl")][:4]
    p = tmp_path_factory.mktemp("cfg") / "sft.jsonl"
    p.write_text("".join(json.dumps({"question": r["title"],
                                     "answer": r["reference_answer"][:300]}) + "\n" for r in rows))
    return p


FLAGS = ["--lora-rank", "4", "--lora-alpha", "8", "--lora-targets", "q,v", "--max-len", "96",
         "--batch-size", "2", "--max-steps", "2", "--lr", "1e-3", "--seed", "7", "-t", "2", "-q"]

CONFIG = """\
# the same settings as FLAGS
lora_rank: 4
lora-alpha: 8
lora_targets: [q, v]
max_len: 96
batch_size: 2
max_steps: 2
lr: 1e-3
seed: 7
threads: 2
quiet: true
"""


def test_config_equals_flags_and_flags_override(run_meteor, smollm_gguf, data, tmp_path):
    run_meteor("train", "-m", smollm_gguf, "--data", data, "--out", tmp_path / "flags", *FLAGS)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(CONFIG)
    run_meteor("train", "--config", cfg, "-m", smollm_gguf, "--data", data, "--out",
               tmp_path / "cfg")
    a = (tmp_path / "flags" / "adapter" / "adapter_model.safetensors").read_bytes()
    b = (tmp_path / "cfg" / "adapter" / "adapter_model.safetensors").read_bytes()
    assert a == b
    run_meteor("train", "--config", cfg, "-m", smollm_gguf, "--data", data, "--out",
               tmp_path / "over", "--lora-rank", "2")
    conf = json.loads((tmp_path / "over" / "adapter" / "adapter_config.json").read_text())
    assert conf["r"] == 2 and sorted(conf["target_modules"]) == ["q_proj", "v_proj"]


@pytest.mark.parametrize("text,expect", [
    ("lora_rnk: 4\n", "train.yaml:1: unknown setting 'lora_rnk'"),
    ("epochs: 2\nlora_rank: {a: 1}\n", "train.yaml:2: 'lora_rank': nested mappings"),
    ("epochs: two\n", "train.yaml:1: epochs expects an integer"),
    ("lr: -1\n", "train.yaml:1: lr = -1 is out of range (a finite number > 0)"),
    ("epochs: 1\nlr: \"1\\0e9\"\n", "train.yaml:2: the value of 'lr' holds a NUL character"),
    ("max_len: 1e9\n", "train.yaml:1: max_len expects an integer"),
    ("lora_rank: 0\n", "train.yaml:1: lora_rank = 0 is out of range"),
    ("full: maybe\n", "train.yaml:1: 'full' must be true or false"),
    ("epochs: [1\n", "train.yaml:2:"),
    ("- 1\n", "expected a mapping"),
])
def test_bad_config(run_meteor, smollm_gguf, data, tmp_path, text, expect):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(text)
    p = run_meteor("train", "--config", cfg, "-m", smollm_gguf, "--data", data, "--out",
                   tmp_path / "o", check=False)
    assert p.returncode == 1
    lines = [l for l in p.stderr.splitlines() if l.startswith("meteor: error:")]
    assert len(lines) == 1 and expect in lines[0], p.stderr
    assert not (tmp_path / "o" / "adapter").exists()


@pytest.mark.parametrize("layers", ["0-9,20-", "all", "5"])
def test_recompute_some_layers_changes_nothing_but_memory(run_meteor, smollm_gguf, data,
                                                          tmp_path, layers):
    run_meteor("train", "-m", smollm_gguf, "--data", data, "--out", tmp_path / "plain", *FLAGS)
    run_meteor("train", "-m", smollm_gguf, "--data", data, "--out", tmp_path / "re", *FLAGS,
               "--recompute-layers", layers)
    a = (tmp_path / "plain" / "adapter" / "adapter_model.safetensors").read_bytes()
    b = (tmp_path / "re" / "adapter" / "adapter_model.safetensors").read_bytes()
    assert a == b


@pytest.mark.parametrize("layers", ["40", "3-1", "x", "1-2-3"])
def test_bad_layer_list(run_meteor, smollm_gguf, data, tmp_path, layers):
    p = run_meteor("train", "-m", smollm_gguf, "--data", data, "--out", tmp_path / "o", *FLAGS,
                   "--recompute-layers", layers, check=False)
    assert p.returncode == 1 and "layer" in p.stderr
