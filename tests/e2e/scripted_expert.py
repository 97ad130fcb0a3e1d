"""A scripted expert for the phase-2 end-to-end tests: an OpenAI chat-completions endpoint on
loopback whose verdicts follow a rule, so a test knows in advance every verdict of a run.

    from e2e.scripted_expert import ScriptedExpert, Rejections, verdict

    rule = Rejections({"Title A": 0, "Title B": 1, "Title C": None})   # None: never accepted
    with ScriptedExpert(rule) as srv:          # srv.url = "http://127.0.0.1:PORT/v1"
        ...
        srv.verdict_requests()                 # every verdict request, parsed, in arrival order
        srv.answered_twice()                   # {body sha256: n} of bodies answered n > 1 times

What is a verdict request: a chat completion whose user message has a line
`Attempt N of at most K` (the contract of `meteor refine`). Its first line is
`Question: <title>`; with --grounded and a reference answer it holds a section starting
`Reference answer:`. The reply is `rule(request)`: a dict is sent as the message's JSON
content, a str as raw content (a schema violation, say), a Fail as an HTTP error.

After a reply that breaks the schema meteor may ask once more in the same conversation (its
repair turn): that request is a verdict request too, with `repair` set.

Every other chat completion is a phase-1 answer request from `meteor distill` (its user
message starts `Question title: <title>`) and gets the content `EXPERT ANSWER <title>`.

Each POST is recorded with the SHA-256 of its body and whether it was answered (status 200
with a reply the contract accepts), so a test can assert that no request was answered twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field

from e2e.servers import LoopbackJsonServer

ATTEMPT_LINE = re.compile(r"^Attempt (\d+) of at most (\d+)$", re.M)
REFERENCE_MARK = "Reference answer:"


@dataclass(frozen=True)
class Fail:
    """An HTTP error reply."""

    status: int = 500
    message: str = "scripted expert failure"


@dataclass
class VerdictRequest:
    title: str
    attempt: int
    max_attempts: int
    system: str
    user: str
    response_format: dict | None
    body_sha256: str
    reference: str | None  # the user message from "Reference answer:" on, if it has one
    repair: bool = False  # meteor's repair turn after a reply that broke the schema


@dataclass
class Received:
    """One POST as the server saw it and what it replied."""

    path: str
    body: bytes
    body_sha256: str
    kind: str  # "verdict", "answer" or "bad" (not a chat completion)
    status: int
    answered: bool  # 200 with a reply the contract accepts
    verdict: VerdictRequest | None = None
    reply: object = None


def verdict(correct: bool, feedback: str, hints=()) -> dict:
    return {"verdict": "correct" if correct else "incorrect", "feedback": feedback,
            "hints": list(hints)}


def is_valid_verdict(reply) -> bool:
    """The verdict schema of the contract: exactly these three members, these types."""
    return (isinstance(reply, dict) and set(reply) == {"verdict", "feedback", "hints"}
            and reply["verdict"] in ("correct", "incorrect")
            and isinstance(reply["feedback"], str)
            and isinstance(reply["hints"], list)
            and all(isinstance(h, str) for h in reply["hints"]))


def feedback_for(title: str, attempt: int) -> str:
    return f"Attempt {attempt} on '{title}' misses the point; say why before the answer."


def hint_for(index: int, attempt: int) -> str:
    return f"hintword{index}x{attempt}"


class Rejections:
    """Accept a question's attempt once it has been rejected rejections[title] times
    (0: the first attempt is accepted; None: never accepted). Titles it does not know are
    accepted at once. Feedback and hints name the title's index and the attempt, so a test
    can find them again in the trajectories."""

    def __init__(self, rejections: dict):
        self.rejections = dict(rejections)
        self.index = {t: i for i, t in enumerate(self.rejections)}

    @classmethod
    def every_second(cls, titles, never=()):
        """Reject the first attempt of every second question (odd index), never accept the
        titles in `never`, accept otherwise."""
        return cls({t: None if t in never else i % 2 for i, t in enumerate(titles)})

    def accepts(self, title: str, attempt: int) -> bool:
        n = self.rejections.get(title, 0)
        return n is not None and attempt > n

    def reply(self, title: str, attempt: int) -> dict:
        i = self.index.get(title, -1)
        if self.accepts(title, attempt):
            return verdict(True, f"Attempt {attempt} on '{title}' is right.", [])
        return verdict(False, feedback_for(title, attempt), [hint_for(i, attempt)])

    def expected_attempts(self, title: str, max_iterations: int) -> int:
        """How many judged attempts the question gets under this rule."""
        n = self.rejections.get(title, 0)
        return max_iterations if n is None else min(n + 1, max_iterations)

    def __call__(self, req: VerdictRequest):
        return self.reply(req.title, req.attempt)


def expert_answer(title: str) -> str:
    return f"EXPERT ANSWER {title}"


def parse_verdict_request(messages, body_sha256: str, response_format) -> VerdictRequest | None:
    """The verdict prompt is the first user message with an attempt line; after it may come
    meteor's repair turn (the bad reply as assistant, a user message asking again)."""
    users = [(i, m.get("content")) for i, m in enumerate(messages)
             if m.get("role") == "user" and isinstance(m.get("content"), str)]
    found = next(((i, u, ATTEMPT_LINE.search(u)) for i, u in users if ATTEMPT_LINE.search(u)), None)
    if found is None:
        return None
    at_msg, user, line = found
    first = user.split("\n", 1)[0]
    title = first[len("Question: "):] if first.startswith("Question: ") else None
    system = next((x.get("content") for x in messages if x.get("role") == "system"), "")
    at = user.find(REFERENCE_MARK)
    return VerdictRequest(title=title, attempt=int(line.group(1)), max_attempts=int(line.group(2)),
                          system=system if isinstance(system, str) else "", user=user,
                          response_format=response_format, body_sha256=body_sha256,
                          reference=user[at:] if at >= 0 else None,
                          repair=any(x.get("role") == "assistant" for x in messages[at_msg + 1:]))


def completion(content: str, model: str, digest: str) -> dict:
    return {
        "id": f"chatcmpl-scripted-{digest[:12]}",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": max(1, len(content.split())),
                  "total_tokens": 10 + max(1, len(content.split()))},
    }


class ScriptedExpert(LoopbackJsonServer):
    """The server; start()/stop() or `with`. `rule` may be replaced between runs."""

    model_id = "scripted"

    def __init__(self, rule=None):
        self.rule = rule or Rejections({})
        self._lock = threading.Lock()
        self._received: list[Received] = []
        super().__init__()

    def answer(self, path: str, body: bytes) -> tuple[int, dict]:
        status, payload, rec = self.handle(path, body)
        # Recorded before the reply goes out: once meteor has a reply, the test sees it.
        self.record(rec)
        return status, payload

    def handle(self, path: str, body: bytes):
        digest = hashlib.sha256(body).hexdigest()
        bad = lambda status, msg: (status, {"error": {"message": msg}},
                                   Received(path, body, digest, "bad", status, False))
        if path.rstrip("/") != "/v1/chat/completions":
            return bad(404, f"no route {path}")
        try:
            req = json.loads(body)
            messages = req["messages"]
            model = str(req.get("model", "scripted"))
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise TypeError("messages")
        except (ValueError, KeyError, TypeError):
            return bad(400, "not a chat completion request")

        vreq = parse_verdict_request(messages, digest, req.get("response_format"))
        if vreq is None:
            user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"),
                        "")
            first = user.split("\n", 1)[0] if isinstance(user, str) else ""
            title = first[len("Question title: "):] if first.startswith("Question title: ") else first
            content = expert_answer(title)
            return 200, completion(content, model, digest), Received(
                path, body, digest, "answer", 200, True, reply=content)

        reply = self.rule(vreq)
        if isinstance(reply, Fail):
            return reply.status, {"error": {"message": reply.message, "type": "server_error"}}, \
                Received(path, body, digest, "verdict", reply.status, False, vreq, reply)
        content = reply if isinstance(reply, str) else json.dumps(reply)
        try:
            valid = is_valid_verdict(json.loads(content))
        except ValueError:
            valid = False
        return 200, completion(content, model, digest), Received(
            path, body, digest, "verdict", 200, valid, vreq, reply)

    def record(self, rec: Received):
        with self._lock:
            self._received.append(rec)

    def received(self) -> list[Received]:
        """Every POST so far, in the order they were answered."""
        with self._lock:
            return list(self._received)

    def verdict_requests(self) -> list[VerdictRequest]:
        return [r.verdict for r in self.received() if r.kind == "verdict"]

    def answer_requests(self) -> list[Received]:
        return [r for r in self.received() if r.kind == "answer"]

    def answers_per_body(self) -> dict:
        """{body sha256: times answered}."""
        counts: dict = {}
        for r in self.received():
            if r.answered:
                counts[r.body_sha256] = counts.get(r.body_sha256, 0) + 1
        return counts

    def answered_twice(self) -> dict:
        return {h: n for h, n in self.answers_per_body().items() if n > 1}

    def clear(self):
        with self._lock:
            self._received.clear()
