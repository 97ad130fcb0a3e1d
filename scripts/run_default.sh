#!/usr/bin/env bash
# The main job on the embedded default: install everything (scripts/setup.sh), then let
# the default model (SmolLM2-135M-Instruct, Q4_1) answer one question from the Python FAQ.
#
#   bash scripts/run_default.sh                       # a fixed FAQ question
#   METEOR_QUESTION="What is a lambda?" bash scripts/run_default.sh
#   METEOR_MODEL=models/gemma-3-270m-q4_k_m.gguf bash scripts/run_default.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/setup.sh

MODEL=${METEOR_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
TOKENS=${METEOR_TOKENS:-200}
QUESTION=${METEOR_QUESTION:-$(python3 - <<'EOF'
import json
want = "How do I copy an object in Python?"
with open("data/python_faq.jsonl", encoding="utf-8") as f:
    rows = [json.loads(line) for line in f if line.strip()]
print(next((r["title"] for r in rows if r["title"] == want), rows[0]["title"]))
EOF
)}

printf '\n[run] model:    %s\n[run] question: %s\n\n' "$MODEL" "$QUESTION"
exec build/meteor generate -m "$MODEL" --chat -p "$QUESTION" -n "$TOKENS"
