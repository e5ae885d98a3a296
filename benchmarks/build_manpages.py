"""Build the third hybrid-benchmark corpus from the manual pages installed on this machine (Debian's man1).

Each page of ``/usr/share/man/man1`` (roff source, gzipped) gives one document and one query:

* query: the description of its NAME line (``ls \\- list directory contents`` -> "list directory
  contents"): a short, lexical, real-world query;
* document: the command's name as title, and the text of every other section (SYNOPSIS,
  DESCRIPTION, OPTIONS, ...) with the roff markup stripped, cut to the first 1500 characters. The
  NAME section is left out, so the query's words are not simply copied into its document;
* relevant: that page only.

Pages that are ``.so`` redirects, have no NAME description of at least 3 words, or share their
description with another page (ambiguous) are skipped; of the rest, every n-th page in file-name
order is kept so that ``--pages`` are chosen deterministically. Splits: 60 % train, 15 % dev, 25 % test.
Written in BEIR format (corpus.jsonl, queries.jsonl, qrels/{train,dev,test}.tsv) to
``benchmarks/out/manpages`` (the default):

    .venv/bin/python benchmarks/build_manpages.py --pages 4000
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "manpages"
_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\\((..)"), " "),  # special characters
    (re.compile(r"\\\[[^\]]*\]"), " "),
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\[&|^/,%:]"), ""),
    (re.compile(r"\\e"), lambda m: "\\"),
    (re.compile(r"\\s[+-]?\d"), ""),
    (re.compile(r"\\\*(\(..|\[[^\]]*\]|.)"), ""),
    (re.compile(r"\\(.)"), r"\1"),
]


def plain(line: str) -> str:
    """One roff line as plain text: escapes removed, a macro line reduced to its arguments."""
    if line.startswith(('.\\"', "'\\\"")) or line.strip() in (".", "'"):
        return ""
    if line.startswith((".", "'")):
        name, _, rest = line[1:].partition(" ")
        if name in ("B", "I", "BI", "BR", "IB", "IR", "RB", "RI", "SM", "SB", "TP", "IP", "SS", "SH", "Nm", "Ar", "Fl"):
            line = rest.replace('"', "")
        else:
            return ""
    for pattern, repl in _ESCAPES:
        line = pattern.sub(repl, line)
    return line.strip()


def parse(source: str) -> tuple[str, str, str] | None:
    """(name, description, body text) of a man page's roff source, or None."""
    if source.lstrip().startswith(".so "):
        return None
    sections: list[tuple[str, list[str]]] = []
    for raw in source.splitlines():
        if raw.startswith((".SH", ".Sh")):
            sections.append((plain("." + "SH " + raw[3:].strip()).upper(), []))
        elif sections:
            text = plain(raw)
            if text:
                sections[-1][1].append(text)
    names = [lines for title, lines in sections if title.startswith("NAME")]
    if not names or not names[0]:
        return None
    head = " ".join(names[0])
    if " - " not in head:
        return None
    name, _, desc = head.partition(" - ")
    body = " ".join(" ".join(lines) for title, lines in sections if not title.startswith("NAME"))
    desc = re.sub(r"\s+", " ", desc).strip()
    return name.strip(), desc, re.sub(r"\s+", " ", body).strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--man-dir", default="/usr/share/man/man1")
    ap.add_argument("--pages", type=int, default=4000)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    pages = []
    for path in sorted(Path(args.man_dir).iterdir()):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            parsed = parse(raw.decode("utf-8", "replace"))
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        if parsed and len(parsed[1].split()) >= 3 and len(parsed[2]) >= 200:
            pages.append((path.name.removesuffix(".gz").rsplit(".", 1)[0], *parsed))
    counts = Counter(p[2].lower() for p in pages)
    pages = [p for p in pages if counts[p[2].lower()] == 1]
    step = max(1, len(pages) // args.pages)
    kept = pages[::step][: args.pages]
    out = args.out
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w") as c, open(out / "queries.jsonl", "w") as q:
        for file, name, desc, body in kept:
            c.write(json.dumps({"_id": file, "title": name, "text": body[:1500]}) + "\n")
            q.write(json.dumps({"_id": f"q-{file}", "text": desc}) + "\n")
    n = len(kept)
    cut = {"train": (0, int(n * 0.6)), "dev": (int(n * 0.6), int(n * 0.75)), "test": (int(n * 0.75), n)}
    for split, (lo, hi) in cut.items():
        with open(out / "qrels" / f"{split}.tsv", "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for file, *_ in kept[lo:hi]:
                f.write(f"q-{file}\t{file}\t1\n")
    (out / "README.md").write_text(
        f"# Debian man pages (man1)\n\nBuilt by benchmarks/build_manpages.py from {args.man_dir}: {n} pages "
        f"(of {len(pages)} usable).\nQuery: a page's NAME description; relevant: that page (NAME section left "
        "out of the document).\n"
    )
    print(f"{n} pages -> {out}")


if __name__ == "__main__":
    main()
