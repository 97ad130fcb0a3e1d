#!/usr/bin/env python3
"""Convert the Python FAQ (Debian's python3-doc HTML) into METEOR raw questions.

Output: one JSON object per line, in METEOR's raw question format:

    {"title": ..., "question_content": ..., "reference_answer": ..., "category": ...}

* title            -- the FAQ heading (the question as the FAQ asks it).
* question_content -- the question again, with the context a reader of the FAQ
                      has: which FAQ page and which section it sits in. The FAQ
                      has no separate question body, so this is the honest
                      "content"; prompts show it under "Content:".
* reference_answer -- the section's text, markup removed; code blocks are kept
                      as fenced blocks, lists as "- " items, inline code in
                      backticks (light Markdown, which judges read well).
* category         -- the FAQ page: general, programming, design, library,
                      extending, windows, gui, installed.

A question is a section (below the page title) that has answer text of its own.
Pure grouping sections ("General Information", "Tkinter questions") and empty
ones are not questions. Output is sorted by page name, then document order, so
it is byte-for-byte reproducible from the same python3-doc version.

Standard library only. Usage:
    faq_to_jsonl.py [--src DIR] [--out FILE] [--sample FILE --sample-size N]
"""

import argparse
import glob
import html.parser
import json
import os
import re
import sys

DEFAULT_SRC_GLOBS = [
    "/usr/share/doc/python3-doc/html/faq",
    "/usr/share/doc/python3*-doc/html/faq",
    "/usr/share/doc/python3*/html/faq",
]

# FAQ pages, in the order output is sorted by (alphabetical).
PAGES = ["design", "extending", "general", "gui", "installed", "library", "programming", "windows"]

BLOCK_TAGS = {"p", "div", "blockquote", "dl", "dt", "dd", "table", "tr", "ul", "ol", "nav", "form"}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
VOID_TAGS = {"br", "img", "input", "meta", "link", "hr", "wbr", "col", "source"}


class Section:
    def __init__(self, sid, depth, parent):
        self.id = sid
        self.depth = depth  # 1 = page title section
        self.parent = parent
        self.children = []
        self.title_parts = []
        self.blocks = []  # list of finished text blocks (strings)

    @property
    def title(self):
        return norm_inline("".join(self.title_parts))


def norm_inline(s):
    return re.sub(r"\s+", " ", s).strip()


class FaqParser(html.parser.HTMLParser):
    """Builds a tree of <section>s with their heading and body text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Section(None, 0, None)
        self.cur = self.root
        self.tag_stack = []  # open non-void tags inside the document body
        self.skip_depth = 0  # >0 while inside ignored markup (headerlink, nav, ...)
        self.in_heading = False
        self.pre_depth = 0
        self.list_stack = []  # ("ul" | "ol", items so far)
        self._li_fresh = False  # next text block starts a list item
        self.buf = []  # inline text of the block being built
        self.pre_buf = []
        self.inline_code = 0
        self.links = []  # (external href or None, buf position) of open <a>

    # -- helpers ---------------------------------------------------------
    def flush(self):
        if self.cur is self.root:
            self.buf = []
            return
        text = norm_inline("".join(self.buf))
        self.buf = []
        if not text:
            return
        if self.list_stack:
            kind, n = self.list_stack[-1]
            indent = "  " * (len(self.list_stack) - 1)
            if self._li_fresh:
                if kind == "ol":
                    n += 1
                    self.list_stack[-1] = (kind, n)
                    text = f"{indent}{n}. {text}"
                else:
                    text = f"{indent}- {text}"
                self._li_fresh = False
            else:
                text = f"{indent}  {text}"
        self.cur.blocks.append(text)

    # -- parser callbacks ------------------------------------------------
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag not in VOID_TAGS:
            self.tag_stack.append((tag, self.skip_depth > 0 or self._ignorable(tag, cls)))
            if self.tag_stack[-1][1]:
                self.skip_depth += 1
                return
        elif self.skip_depth:
            return
        if self.skip_depth:
            return
        if tag == "section":
            self.flush()
            sec = Section(a.get("id"), self.cur.depth + 1, self.cur)
            self.cur.children.append(sec)
            self.cur = sec
        elif tag in HEADINGS:
            self.flush()
            self.in_heading = True
        elif tag == "pre":
            self.flush()
            self.pre_depth += 1
            self.pre_buf = []
        elif tag in ("ul", "ol"):
            self.flush()
            self.list_stack.append((tag, 0))
        elif tag == "li":
            self.flush()
            self._li_fresh = True
        elif tag == "br":
            self.buf.append(" ")
        elif tag == "a":
            href = a.get("href") or ""
            external = "external" in cls and re.match(r"https?://", href)
            self.links.append((href if external and not self.in_heading and not self.pre_depth else None, len(self.buf)))
        elif tag == "code" and not self.pre_depth and not self.in_heading:
            if self.inline_code == 0:
                self.buf.append("`")
            self.inline_code += 1
        elif tag in BLOCK_TAGS:
            self.flush()

    def handle_endtag(self, tag):
        if tag in VOID_TAGS:
            return
        # pop to the matching tag (HTML from Sphinx is well formed; be lenient anyway)
        for i in range(len(self.tag_stack) - 1, -1, -1):
            if self.tag_stack[i][0] == tag:
                break
        else:
            return
        while len(self.tag_stack) > i:
            t, skipped = self.tag_stack.pop()
            if skipped:
                self.skip_depth -= 1
                continue
            self._close(t)

    def _close(self, tag):
        if tag == "section":
            self.flush()
            self.cur = self.cur.parent
        elif tag in HEADINGS:
            self.cur.title_parts.extend(self.buf)
            self.buf = []
            self.in_heading = False
        elif tag == "pre":
            self.pre_depth -= 1
            code = "".join(self.pre_buf).rstrip()
            code = "\n".join(line.rstrip() for line in code.split("\n"))
            code = code.strip("\n")
            if code:
                fence = "```"
                if self.list_stack:
                    indent = "  " * len(self.list_stack)
                    code = "\n".join(indent + ln if ln else ln for ln in code.split("\n"))
                    fence = indent + fence
                self.cur.blocks.append(f"{fence}\n{code}\n{fence}")
            self.pre_buf = []
        elif tag in ("ul", "ol"):
            self.flush()
            if self.list_stack:
                self.list_stack.pop()
        elif tag == "li":
            self.flush()
        elif tag == "a":
            href, start = self.links.pop() if self.links else (None, 0)
            if href:
                text = "".join(self.buf[start:])
                if href.rstrip("/") not in text:
                    self.buf.append(f" ({href})")
        elif tag == "code" and not self.pre_depth and not self.in_heading:
            self.inline_code -= 1
            if self.inline_code == 0:
                self.buf.append("`")
        elif tag in BLOCK_TAGS:
            self.flush()

    def handle_data(self, data):
        if self.skip_depth or self.cur is self.root:
            return
        if self.pre_depth:
            self.pre_buf.append(data)
        else:
            self.buf.append(data)

    @staticmethod
    def _ignorable(tag, cls):
        if tag == "a" and "headerlink" in cls:
            return True
        if tag in ("nav", "script", "style", "form", "input"):
            return True
        if tag == "div" and ("sphinxsidebar" in cls or "related" in cls or "footer" in cls):
            return True
        return False


def iter_sections(sec):
    for c in sec.children:
        yield c
        yield from iter_sections(c)


def clean_answer(blocks):
    text = "\n\n".join(blocks)
    # Sphinx typography -> plain ASCII where it is unambiguous
    text = text.replace("\u00b6", "")
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def question_content(title, page_name, group_path):
    quoted = page_name if page_name.startswith("\u201c") else f"\u201c{page_name}\u201d"
    where = f"the {quoted} of the Python documentation"
    if group_path:
        where += ", section \u201c" + " \u203a ".join(group_path) + "\u201d"
    return f"{title}\n\n(From {where}.)"


def is_pure_cross_reference(answer):
    """"See the next question." and the like: no answer of its own."""
    return bool(re.fullmatch(r"See [^\n]{0,150}[.?]", answer))


def convert_page(path, category):
    with open(path, encoding="utf-8") as f:
        html = f.read()
    p = FaqParser()
    p.feed(html)
    p.close()
    tops = [s for s in p.root.children if s.depth == 1]
    if len(tops) != 1:
        raise SystemExit(f"{path}: expected one top-level section, found {len(tops)}")
    top = tops[0]
    page_name = top.title  # e.g. "Programming FAQ"
    out = []
    for sec in iter_sections(top):
        title = sec.title
        answer = clean_answer(sec.blocks)
        if not title or not answer:
            continue  # a pure grouping section, or an empty one
        if is_pure_cross_reference(answer):
            continue  # nothing to learn from or to judge against
        # a section with sub-questions whose own text is only an intro is still a
        # question only if its heading reads like one
        if sec.children and not title.rstrip().endswith("?"):
            continue
        group_path = []
        g = sec.parent
        while g is not None and g is not top:
            group_path.append(g.title)
            g = g.parent
        group_path.reverse()
        out.append(
            {
                "title": title,
                "question_content": question_content(title, page_name, group_path),
                "reference_answer": answer,
                "category": category,
            }
        )
    return out


def find_src():
    for pat in DEFAULT_SRC_GLOBS:
        for d in sorted(glob.glob(pat)):
            if all(os.path.isfile(os.path.join(d, p + ".html")) for p in PAGES):
                return d
    return None


def dumps(rec):
    return json.dumps(rec, ensure_ascii=False, separators=(", ", ": "))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", help="folder holding the FAQ's *.html (default: python3-doc's)")
    ap.add_argument("--out", default="-", help="output .jsonl (default: stdout)")
    ap.add_argument("--sample", help="also write a small sample .jsonl here")
    ap.add_argument("--sample-size", type=int, default=8)
    args = ap.parse_args(argv)

    src = args.src or find_src()
    if not src:
        print("faq_to_jsonl: Python FAQ HTML not found (install Debian's python3-doc)", file=sys.stderr)
        return 1
    records = []
    for page in PAGES:
        path = os.path.join(src, page + ".html")
        if not os.path.isfile(path):
            print(f"faq_to_jsonl: missing {path}", file=sys.stderr)
            return 1
        records.extend(convert_page(path, page))

    seen = set()
    for r in records:
        key = (r["category"], r["title"])
        if key in seen:
            print(f"faq_to_jsonl: duplicate question {key}", file=sys.stderr)
            return 1
        seen.add(key)

    text = "".join(dumps(r) + "\n" for r in records)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        write_atomic(args.out, text)

    if args.sample:
        write_atomic(args.sample, "".join(dumps(r) + "\n" for r in pick_sample(records, args.sample_size)))

    counts = {}
    for r in records:
        counts[r["category"]] = counts.get(r["category"], 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"faq_to_jsonl: {len(records)} questions ({summary})", file=sys.stderr)
    return 0


def pick_sample(records, n):
    """Deterministic and balanced over pages: round-robin over the pages, taking each
    page's questions in document order, keeping only real questions (title ends with
    "?") whose reference answer is of moderate length (quick runs, meaningful judging)."""
    by_cat = {}
    for i, r in enumerate(records):
        if r["title"].endswith("?") and 200 <= len(r["reference_answer"]) <= 800:
            by_cat.setdefault(r["category"], []).append((i, r))
    picked, titles = [], set()
    depth = 0
    while len(picked) < n and any(depth < len(v) for v in by_cat.values()):
        for cat in PAGES:
            v = by_cat.get(cat, [])
            if depth < len(v) and len(picked) < n and v[depth][1]["title"] not in titles:
                picked.append(v[depth])
                titles.add(v[depth][1]["title"])
        depth += 1
    picked.sort(key=lambda t: t[0])  # back to file order
    return [t[1] for t in picked]


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
