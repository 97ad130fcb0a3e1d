#!/usr/bin/env bash
# The main job on the embedded default: install everything (scripts/setup.sh), then run
# METEOR phase 1 (weak-to-strong distillation) on bundled Python FAQ questions: the weak
# model (Qwen2.5-Coder-0.5B-Instruct) writes a guideline per question, the expert
# (Qwen2.5-Coder-1.5B-Instruct, run in the same process: no server, no account) answers by
# it and scores each answer 1-10 (its replies decoded under a JSON schema), and the weak
# model is fine-tuned on the answers (LoRA). Afterwards the weak model answers a held-out
# question, before and after the fine-tuning.
#
#   bash scripts/run_default.sh                     # run dir: runs/default
#   METEOR_RUN=runs/other bash scripts/run_default.sh
#   METEOR_QUESTIONS=data/python_faq.jsonl bash scripts/run_default.sh   # all 176 questions
#
# Rerunning continues the run where it stopped (nothing is generated or trained twice);
# delete the run directory to start over.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/setup.sh

WEAK=${METEOR_MODEL:-models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}
EXPERT=${METEOR_EXPERT:-models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf}
QUESTIONS=${METEOR_QUESTIONS:-data/python_faq_sample.jsonl}
RUN=${METEOR_RUN:-runs/default}

printf '\n[run] weak model: %s\n[run] expert:     local:%s\n[run] questions:  %s\n[run] run dir:    %s\n\n' \
    "$WEAK" "$EXPERT" "$QUESTIONS" "$RUN"
build/meteor distill --run "$RUN" -m "$WEAK" --questions "$QUESTIONS" \
    --expert "local:$EXPERT" --answer-max-tokens 200 --guideline-max-tokens 96 --score \
    --test-fraction 0.25 --max-len 384 --epochs 3 --lr 2e-4
printf '\n'
build/meteor status "$RUN"

QUESTION=$(python3 - "$RUN" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(f"{sys.argv[1]}/run.db")
row = db.execute("select title from questions where split='test' order by seq limit 1").fetchone()
print(row[0] if row else "How do I copy an object in Python?")
PY
)
printf '\n[run] a held-out question: %s\n[run] the weak model before phase 1:\n\n' "$QUESTION"
build/meteor generate -m "$WEAK" --chat -p "$QUESTION" -n 120 --greedy --repeat-penalty 1.3
printf '\n\n[run] after phase 1 (adapter %s/adapters/phase1):\n\n' "$RUN"
build/meteor generate -m "$WEAK" --adapter "$RUN/adapters/phase1" --chat -p "$QUESTION" -n 200 --greedy --repeat-penalty 1.3
echo
