"""The committed Python FAQ data is exactly what scripts/faq_to_jsonl.py makes
from Debian's python3-doc, and is well-formed METEOR raw question data."""

import json
import subprocess
import sys

import pytest

FIELDS = ["title", "question_content", "reference_answer", "category"]
CATEGORIES = {"general", "programming", "library", "design", "extending", "windows", "gui", "installed"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def regenerated(repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("faq")
    proc = subprocess.run(
        [
            sys.executable,
            str(repo_root / "scripts" / "faq_to_jsonl.py"),
            "--out",
            str(out / "python_faq.jsonl"),
            "--sample",
            str(out / "python_faq_sample.jsonl"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("name", ["python_faq.jsonl", "python_faq_sample.jsonl"])
def test_committed_file_is_reproducible(repo_root, regenerated, name):
    committed = (repo_root / "data" / name).read_bytes()
    fresh = (regenerated / name).read_bytes()
    assert committed == fresh, (
        f"data/{name} differs from a fresh conversion of python3-doc; regenerate with "
        "python3 scripts/faq_to_jsonl.py --out data/python_faq.jsonl --sample data/python_faq_sample.jsonl"
    )


@pytest.fixture(scope="module")
def faq(repo_root):
    return load(repo_root / "data" / "python_faq.jsonl")


def test_fields_and_types(faq):
    for r in faq:
        assert list(r) == FIELDS, r
        for k in FIELDS:
            assert isinstance(r[k], str) and r[k].strip() == r[k] and r[k], (k, r)
        assert r["category"] in CATEGORIES, r
        assert r["question_content"].startswith(r["title"]), r


def test_count_and_coverage(faq):
    assert 150 <= len(faq) <= 250, len(faq)
    assert {r["category"] for r in faq} == CATEGORIES


def test_no_duplicates(faq):
    keys = [(r["category"], r["title"]) for r in faq]
    assert len(keys) == len(set(keys))
    answers = [r["reference_answer"] for r in faq]
    assert len(answers) == len(set(answers))


def test_no_markup_left(faq):
    for r in faq:
        for k in ("title", "reference_answer"):
            assert "\u00b6" not in r[k], r["title"]  # Sphinx permalink sign
            assert "class=\"" not in r[k] and "</" not in r[k], r["title"]


def test_sorted_by_page(faq):
    cats = [r["category"] for r in faq]
    firsts = [c for i, c in enumerate(cats) if i == 0 or cats[i - 1] != c]
    assert firsts == sorted(CATEGORIES), "records must be grouped by page, pages sorted"


def test_known_question_round_trip(faq):
    by_title = {r["title"]: r for r in faq if r["category"] == "programming"}
    r = by_title["Why are default values shared between objects?"]
    assert "mutable" in r["reference_answer"]
    assert "```" in r["reference_answer"]  # code blocks survive as fenced blocks
    assert "Programming FAQ" in r["question_content"]


def test_sample_is_subset(repo_root, faq):
    sample = load(repo_root / "data" / "python_faq_sample.jsonl")
    assert 5 <= len(sample) <= 12
    assert all(s in faq for s in sample)
