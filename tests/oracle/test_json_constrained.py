"""JSON-schema-constrained decoding, end to end through `meteor generate`.

Property: under a schema, whatever the model samples (temperature 1.0, many seeds) is one
JSON document that Python's `jsonschema` accepts, and generation stops right after it.
The schemas cover what the pipeline needs (the phase-2 verdict, the five-criteria judge)
and the keywords the compiler supports: nested objects, enums, const, bounded arrays,
anyOf, recursive $ref, Unicode strings, lists of types. Three vocabularies: SmolLM2
(byte-level BPE, 49k), Gemma 3 (SentencePiece with byte fallback, 262k) and Qwen2.5-Coder
0.5B (byte-level BPE, 151k, padded embedding rows).

Each model's cases go through one `meteor generate --batch` run: every line carries its own
"json_schema", so the test also covers batched sequences each with a schema of its own.
"""

import json

import jsonschema
import pytest

QWEN05_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

VERDICT = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["accept", "revise"]},
        "feedback": {"type": "string", "maxLength": 120},
        "hints": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 3},
    },
    "required": ["verdict", "feedback", "hints"],
}

JUDGE = {
    "type": "object",
    "properties": {
        **{c: {"type": "integer", "minimum": 1, "maximum": 10}
           for c in ("accuracy", "completeness", "clarity", "relevance", "depth")},
        "rationale": {"type": "string", "maxLength": 100},
    },
    "required": ["accuracy", "completeness", "clarity", "relevance", "depth", "rationale"],
    "title": "Five-criteria judgement",
    "description": "annotations are accepted and ignored",
}

SCHEMAS = {
    "verdict": VERDICT,
    "judge": JUDGE,
    "nested": {
        "type": "object",
        "properties": {
            "person": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 20},
                    "age": {"type": "integer", "minimum": 0, "maximum": 120},
                    "address": {
                        "type": "object",
                        "properties": {"city": {"type": "string", "maxLength": 20},
                                       "zip": {"type": "string", "maxLength": 6}},
                        "required": ["city"],
                    },
                },
                "required": ["name", "age", "address"],
            },
            "active": {"type": "boolean"},
        },
        "required": ["person", "active"],
    },
    "enum": {"type": "string", "enum": ["alpha", "beta", "gamma delta", "ε-unicode"]},
    "bounded_array": {"type": "array", "items": {"type": "integer", "minimum": -5, "maximum": 5},
                      "minItems": 2, "maxItems": 4},
    "any_of": {
        "anyOf": [
            {"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}},
             "required": ["kind", "x"]},
            {"type": "object",
             "properties": {"kind": {"const": "b"}, "y": {"type": "string", "maxLength": 10}},
             "required": ["kind", "y"]},
            {"type": "null"},
        ]
    },
    "recursive": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer", "minimum": 0, "maximum": 99},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"},
                                 "maxItems": 2},
                },
                "required": ["value", "children"],
            }
        },
        "$ref": "#/$defs/node",
    },
    "unicode": {
        "type": "object",
        "properties": {"greeting": {"type": "string", "minLength": 1, "maxLength": 12},
                       "emoji": {"type": "string", "minLength": 1, "maxLength": 3}},
        "required": ["greeting", "emoji"],
    },
    "type_list": {"type": ["integer", "null", "boolean"]},
    "optional_props": {
        "type": "object",
        "properties": {"a": {"type": "boolean"}, "b": {"type": "null"},
                       "c": {"type": "number"}, "d": {"type": "string", "maxLength": 8}},
        "required": ["a"],
        "additionalProperties": False,
    },
    "escapes_const": {
        "type": "object",
        "properties": {"path": {"type": "string", "maxLength": 30},
                       "version": {"const": "1.0"},
                       "quote": {"type": "string", "maxLength": 20}},
        "required": ["path", "version", "quote"],
    },
    "number_array": {"type": "array", "items": {"type": "number"}, "maxItems": 3},
}

PROMPTS = {
    "verdict": "Judge the answer 'A Python list is an ordered, mutable sequence.' Reply as JSON.",
    "judge": "Score the answer 'Use reversed(xs) to reverse a list' on five criteria, as JSON.",
    "nested": "Describe a person with a name, an age and an address, as JSON.",
    "enum": "Pick a word:",
    "bounded_array": "A few small integers as a JSON array:",
    "any_of": "A JSON value:",
    "recursive": "A small tree as JSON:",
    "unicode": "Say hello in Japanese and give one emoji, as JSON.",
    "type_list": "A JSON scalar:",
    "optional_props": "A JSON object with a few flags:",
    "escapes_const": 'A Windows path like C:\\temp and a quote with "quotes", as JSON.',
    "number_array": "Some measurements as a JSON array of numbers:",
}

FINISHED = ("document complete", "eos")


def run_batch(run_meteor, model, tmp_path, seeds, max_tokens=200):
    lines, cases = [], []
    for name, schema in SCHEMAS.items():
        for s in range(seeds):
            lines.append(json.dumps({"id": f"{name}/{s}", "prompt": PROMPTS[name],
                                     "json_schema": schema}))
            cases.append(name)
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    proc = run_meteor("generate", "-m", model, "--batch", path, "--temperature", "1.0",
                      "--top-k", "0", "--top-p", "1", "--seed", "7", "-n", max_tokens, "-q",
                      timeout=900)
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == len(cases)
    return cases, out


def check_outputs(cases, out):
    finished = {}
    for name, res in zip(cases, out):
        text = res["text"]
        if res["stop"] not in FINISHED:
            # Only a document the token limit cut may be unfinished, and only where the
            # schema leaves its size open (recursion).
            assert res["stop"] == "length" and name == "recursive", (name, res["stop"], text)
            continue
        finished[name] = finished.get(name, 0) + 1
        # One document and nothing after it (leading whitespace is JSON whitespace).
        doc = json.loads(text)
        jsonschema.validate(doc, SCHEMAS[name])
        assert text == text.rstrip() or name == "type_list", repr(text)
    # Sampled trees tend to nest until the token limit (the models like to), so only the
    # recursive schema may have no finished document; the matcher's unit tests cover it.
    for name in SCHEMAS:
        assert name == "recursive" or finished.get(name, 0) > 0, f"no finished {name} document"


@pytest.mark.parametrize("model_fixture,seeds", [("smollm_gguf", 3), ("gemma_gguf", 2)])
def test_sampled_outputs_validate(request, run_meteor, model_fixture, seeds, tmp_path):
    model = request.getfixturevalue(model_fixture)
    check_outputs(*run_batch(run_meteor, model, tmp_path, seeds))


def test_sampled_outputs_validate_qwen(run_meteor, models_dir, tmp_path):
    model = models_dir / QWEN05_FILE
    assert model.is_file(), f"{model} missing: run `bash scripts/setup.sh models`"
    check_outputs(*run_batch(run_meteor, model, tmp_path, 2))


def test_greedy_enum_picks_only_enum_values(run_meteor, smollm_gguf, gemma_gguf, tmp_path):
    values = ["red", "green", "blue", "dark purple"]
    schema = tmp_path / "enum.json"
    schema.write_text(json.dumps({"type": "string", "enum": values}))
    for model in (smollm_gguf, gemma_gguf):
        for prompt in ("The colour of the sky is", "Grass is", "{\"colour\": "):
            proc = run_meteor("generate", "-m", model, "-p", prompt, "--json-schema", schema,
                              "--greedy", "-n", "20", "--json")
            res = json.loads(proc.stdout)
            assert json.loads(res["text"]) in values, res
            assert res["stop"] in FINISHED


def test_json_object_mode_and_beams(run_meteor, smollm_gguf, models_dir):
    # Any object: the 135M model loops inside a free object, so Qwen writes this one.
    proc = run_meteor("generate", "-m", models_dir / QWEN05_FILE, "--chat", "-p",
                      "Describe a cat as JSON.", "--json-object", "--greedy", "-n", "200", "--json")
    res = json.loads(proc.stdout)
    assert res["stop"] in FINISHED and isinstance(json.loads(res["text"]), dict), res
    schema_args = ["--json-schema", "/dev/stdin"]
    proc = run_meteor("generate", "-m", smollm_gguf, "--chat", "-p", "Judge 'lists are mutable'.",
                      *schema_args, "--beams", "3", "--n-best", "3", "-n", "150", "--json",
                      input=json.dumps(VERDICT))
    res = json.loads(proc.stdout)
    hyps = res["n_best"]
    assert hyps
    for h in hyps:
        if h["stop"] in FINISHED:
            jsonschema.validate(json.loads(h["text"]), VERDICT)
    assert any(h["stop"] in FINISHED for h in hyps)


@pytest.mark.parametrize("schema,needle", [
    ({"type": "string", "pattern": "^a+$"}, '"pattern" at the schema root'),
    ({"type": "object", "properties": {"x": {"type": "string", "format": "email"}}},
     '"format" at /properties/x'),
    ({"type": "objekt"}, "objekt"),
    ({"type": "array", "minItems": "x"}, "minItems"),
    ({"type": "array", "minItems": 3, "maxItems": 1}, "minItems"),
    ({"$ref": "#/$defs/missing"}, "missing"),
])
def test_bad_schemas_give_one_clear_error(run_meteor, smollm_gguf, tmp_path, schema, needle):
    f = tmp_path / "schema.json"
    f.write_text(json.dumps(schema))
    proc = run_meteor("generate", "-m", smollm_gguf, "-p", "x", "--json-schema", f, "-n", "5",
                      check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert err.startswith("meteor: error:") and needle in err, err
    assert len(err.splitlines()) == 1, err


def test_malformed_and_oversized_schemas(run_meteor, smollm_gguf, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "object", ')
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"type": "string",
                               "enum": [f"value-{i:06d}" for i in range(30000)]}))
    for f in (bad, big):
        proc = run_meteor("generate", "-m", smollm_gguf, "-p", "x", "--json-schema", f,
                          "-n", "5", check=False)
        assert proc.returncode != 0
        assert proc.stderr.startswith("meteor: error:") and str(f) in proc.stderr, proc.stderr
    proc = run_meteor("generate", "-m", smollm_gguf, "-p", "x", "--json-schema", bad,
                      "--json-object", check=False)
    assert proc.returncode != 0 and "not both" in proc.stderr
