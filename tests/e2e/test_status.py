"""`meteor status RUN` and `meteor status RUN --json` on a run store holding every kind of row
the summary shows: questions with and without a split, done and failed items (a long
multi-line UTF-8 error, a failure without a message, more failures than are listed), expert
usage of several phases (one with failed attempts only), metrics whose latest value is NaN.

The run directory comes from `meteor distill --dry-run` (questions imported and split, nothing
generated, no expert); the other rows are written into its run.db with sqlite3. The text form
is rebuilt byte for byte from the JSON form (`status_text_from_json`), so both carry the same
data and the text's layout (widths, one-line errors cut at 120 bytes on a UTF-8 boundary) is
pinned; the JSON is also checked against the database itself.
"""

import json
import math
import sqlite3
import subprocess

import pytest

ERROR_SHOWN = 120
FAILED_LISTED = 5


def one_line(error: str) -> bytes:
    """The text form's error: control bytes as spaces, at most ERROR_SHOWN bytes, a cut one
    ending in "..." on a character boundary."""
    raw = error.encode("utf-8")
    kept = bytes(0x20 if c < 0x20 or c == 0x7F else c for c in raw[:ERROR_SHOWN])
    if len(raw) <= ERROR_SHOWN:
        return kept
    n = ERROR_SHOWN
    while n > 0 and raw[n] & 0xC0 == 0x80:
        n -= 1
    return kept[:n] + b"..."


def status_text_from_json(run, s) -> bytes:
    """What `meteor status RUN` prints, rebuilt from `meteor status RUN --json` (C's printf
    pads by bytes, so the lines are built as bytes)."""
    b = lambda v: str(v).encode("utf-8")
    out = [b"run %s\n" % b(run), b"run store %s\n" % b(s["path"]),
           b"questions %d\n" % s["questions"]["total"]]
    out += [b"  %-10s %8d\n" % (b(name), n) for name, n in s["questions"]["splits"].items()]

    items = s["items"]
    if items:
        w = max([16] + [len(b(i["phase"])) + 1 + len(b(i["stage"])) for i in items])
        out.append(b"\n%-*s %8s %8s\n" % (w + 2, b"items", b"done", b"failed"))
        out += [b"  %-*s %8d %8d\n" % (w, b(i["phase"]) + b"/" + b(i["stage"]), i["done"],
                                       i["failed"]) for i in items]
    else:
        out.append(b"\nitems: none yet\n")

    f = s["failures"]
    if f["total"] > FAILED_LISTED:
        out.append(b"\nfailed items %d (retried on the next run), the first %d:\n"
                   % (f["total"], FAILED_LISTED))
    elif f["total"]:
        out.append(b"\nfailed items %d (retried on the next run):\n" % f["total"])
    for i in f["first"]:
        error = "(no message)" if i["error"] is None else i["error"]
        out.append(b"  %s/%s %s (%d failure%s): %s\n" % (
            b(i["phase"]), b(i["stage"]), b(i["qid"]), i["attempts"],
            b"" if i["attempts"] == 1 else b"s", one_line(error)))

    phases = s["usage"]["phases"]
    row = b"  %-*s %9d %9d %9d %14d %14d %10.4f\n"
    cols = ("requests", "attempts", "failed_attempts", "prompt_tokens", "completion_tokens",
            "cost")
    if phases:
        w = max([12] + [len(b(p["phase"])) for p in phases])
        out.append(b"\n%-*s %9s %9s %9s %14s %14s %10s\n" % (
            w + 2, b"expert usage", b"requests", b"attempts", b"failed", b"prompt tok",
            b"completion tok", b"cost"))
        out += [row % (w, b(p["phase"]), *(p[c] for c in cols)) for p in phases]
        out.append(row % (w, b"total", *(s["usage"]["total"][c] for c in cols)))
    else:
        out.append(b"\nexpert usage: none yet\n")

    metrics = s["metrics"]
    if metrics:
        w = max([20] + [len(b(m["phase"])) + 2 + len(b(m["name"])) for m in metrics])
        out.append(b"\n%-*s %12s\n" % (w + 2, b"metrics (latest)", b"value"))
        for m in metrics:
            label = b(m["phase"]) + b"  " + b(m["name"])
            value = b"%12s" % b"nan" if m["value"] is None else b"%12.6g" % m["value"]
            out.append(b"  %-*s %s\n" % (w, label, value))
    return b"".join(out)


def status(meteor_bin, run, *extra) -> bytes:
    p = subprocess.run([str(meteor_bin), "status", str(run), *extra], capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert p.stderr == b""
    return p.stdout


def status_json(meteor_bin, run):
    out = status(meteor_bin, run, "--json")
    assert out.endswith(b"\n") and out.count(b"\n") == 1, "one JSON line"
    return json.loads(out)


def check_agree(meteor_bin, run):
    """The text form is the JSON form formatted; returns the parsed JSON."""
    s = status_json(meteor_bin, run)
    assert status(meteor_bin, run) == status_text_from_json(run, s)
    return s


# An error with line breaks and a tab, 28 bytes up to the x's, whose two-byte character
# straddles the 120-byte cut (bytes 119 and 120, from 0), and that goes on for 300 more.
LONG_ERROR = "HTTP 500:\nthe server said\r\n\t" + "x" * 91 + "é" + "y" * 300 + "\nlast line"


@pytest.fixture
def dry_run_dir(run_meteor, smollm_gguf, repo_root, tmp_path):
    """A run directory after `meteor distill --dry-run` on 5 FAQ questions (4 train, 1 test)."""
    rows = [l for l in (repo_root / "data" / "python_faq.jsonl").read_text(
        encoding="utf-8").splitlines() if l.strip()][:5]
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(rows) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    run_meteor("distill", "--run", run, "-m", smollm_gguf, "--questions", questions,
               "--dry-run", "--test-fraction", "0.25", "--seed", "42", "-t", "1", "--quiet")
    return run


def fill(db):
    """Rows of every kind the summary shows, as a run writes them."""
    with sqlite3.connect(db) as c:
        c.execute("insert into questions(id, seq, title, content, split)"
                  " values('late', 1000, 'a late question', 'not split yet', null)")
        train = [r[0] for r in c.execute("select id from questions where split='train'"
                                         " order by seq")]
        for q in train:
            c.execute("insert into items(phase, stage, qid, state, attempts, output)"
                      " values('phase1', 'guideline', ?, 1, 0, 'g')", (q,))
        failed = [(train[0], 3, LONG_ERROR), (train[1], 1, None)] + [
            (f"extra{i}", 2, f"bad reply {i}: ünïcödé") for i in range(5)]
        for qid, attempts, error in failed:
            c.execute("insert into items(phase, stage, qid, state, attempts, error)"
                      " values('phase1', 'answer', ?, 2, ?, ?)", (qid, attempts, error))
        c.execute("insert into items(phase, stage, qid, state, attempts, output)"
                  " values('phase2_refinement', 'verdict', ?, 1, 0, 'ok')", (train[2],))
        for h, phase, p, comp, cost in [("h1", "phase1", 1234, 567, 0.12345),
                                        ("h2", "phase1", 100, 50, 0.5),
                                        ("h3", "phase2_refinement", 10, 20, 0.25)]:
            c.execute("insert into requests(hash, phase, request, response, prompt_tokens,"
                      " completion_tokens, cost, attempts) values(?, ?, '{}', 'r', ?, ?, ?, 1)",
                      (h, phase, p, comp, cost))
        for h, phase, attempt, http, error in [("h1", "phase1", 1, 500, "oops"),
                                               ("h1", "phase1", 2, 200, None),
                                               ("h2", "phase1", 1, 200, None),
                                               ("h3", "phase2_refinement", 1, 200, None),
                                               ("h4", "judge", 1, 429, "rate limited")]:
            c.execute("insert into attempts(hash, phase, attempt, http_status, error, seconds)"
                      " values(?, ?, ?, ?, ?, 1)", (h, phase, attempt, http, error))
        for phase, name, value in [("phase1", "sft_last_loss", 3.0),
                                   ("phase1", "sft_last_loss", 0.75),
                                   ("phase1", "judge_score_guideline", 7.5),
                                   ("phase1", "judge_score_guideline", None),  # NaN
                                   ("phase2_refinement", "first_attempt_acceptance_rate", 1e-7)]:
            c.execute("insert into metrics(phase, name, value) values(?, ?, ?)",
                      (phase, name, value))


def test_status_json_and_text_agree(meteor_bin, dry_run_dir):
    run = dry_run_dir
    # Questions only: the "none yet" lines, and empty lists in the JSON.
    s = check_agree(meteor_bin, run)
    assert s["questions"] == {"total": 5, "splits": {"train": 4, "test": 1}}
    assert s["items"] == [] and s["failures"] == {"total": 0, "first": []}
    assert s["usage"]["phases"] == [] and s["metrics"] == []
    assert set(s["usage"]["total"].values()) == {0}
    text = status(meteor_bin, run).decode()
    assert "items: none yet" in text and "expert usage: none yet" in text

    fill(run / "run.db")
    s = check_agree(meteor_bin, run)
    assert s["path"] == str(run / "run.db")
    assert s["questions"] == {"total": 6, "splits": {"train": 4, "test": 1, "unsplit": 1}}
    assert s["items"] == [
        {"phase": "phase1", "stage": "guideline", "done": 4, "failed": 0},
        {"phase": "phase1", "stage": "answer", "done": 0, "failed": 7},
        {"phase": "phase2_refinement", "stage": "verdict", "done": 1, "failed": 0},
    ]
    with sqlite3.connect(run / "run.db") as c:
        first = c.execute("select phase, stage, qid, attempts, error from items where state=2"
                          " order by rowid limit 5").fetchall()
    assert s["failures"]["total"] == 7
    assert [tuple(f.values()) for f in s["failures"]["first"]] == first
    assert s["failures"]["first"][0]["error"] == LONG_ERROR, "errors are whole in the JSON"
    assert s["failures"]["first"][1]["error"] is None
    usage = {p["phase"]: p for p in s["usage"]["phases"]}
    assert list(usage) == ["judge", "phase1", "phase2_refinement"]
    assert usage["judge"] == {"phase": "judge", "requests": 0, "attempts": 1,
                              "failed_attempts": 1, "prompt_tokens": 0, "completion_tokens": 0,
                              "cost": 0}
    assert usage["phase1"]["requests"] == 2 and usage["phase1"]["attempts"] == 3
    assert usage["phase1"]["failed_attempts"] == 1 and usage["phase1"]["prompt_tokens"] == 1334
    assert math.isclose(usage["phase1"]["cost"], 0.62345)
    total = s["usage"]["total"]
    assert (total["requests"], total["attempts"], total["failed_attempts"],
            total["prompt_tokens"], total["completion_tokens"]) == (3, 5, 2, 1344, 637)
    assert math.isclose(total["cost"], 0.87345)
    assert s["metrics"] == [
        {"phase": "phase1", "name": "judge_score_guideline", "value": None},
        {"phase": "phase1", "name": "sft_last_loss", "value": 0.75},
        {"phase": "phase2_refinement", "name": "first_attempt_acceptance_rate", "value": 1e-7},
    ]

    # The text form shows the long error on one line, cut before the two-byte character.
    text = status(meteor_bin, run)
    line = next(l for l in text.split(b"\n") if b"(3 failures)" in l)
    shown = line.split(b"(3 failures): ", 1)[1]
    assert shown == b"HTTP 500: the server said   " + b"x" * 91 + b"..."
    assert len(shown) == ERROR_SHOWN - 1 + 3
    assert b"(1 failure): (no message)" in text
    assert b"failed items 7 (retried on the next run), the first 5:" in text
    assert b"  phase1  judge_score_guideline" in text and b"nan\n" in text


def test_status_help_and_errors(meteor_bin, run_meteor, tmp_path):
    help_text = run_meteor("status", "--help").stdout
    assert "--json" in help_text and "failed_attempts" in help_text
    p = run_meteor("status", tmp_path, "--json", check=False)
    assert p.returncode == 1 and p.stdout == ""
    assert "not a run directory" in p.stderr
