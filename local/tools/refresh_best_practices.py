"""Moves the line ranges in docs/best-practices.md to where their quoted text now is.

Each link in the map reads `[path Lx-Ly](../path#Lx-Ly) `text``. After code moves, run
`python3 local/tools/refresh_best_practices.py` (or `make best-practices`): every range
is moved to the first line holding its text, keeping its length. Text that is gone must
be fixed by hand; tests/integration/best_practices.rs says which.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\[(?P<path>[^\] ]+) L(\d+)-L(\d+)\]\(\.\./(?P=path)#L(\d+)-L(\d+)\) `(?P<text>[^`]+)`")


def refresh(match):
    path, text = match["path"], match["text"]
    start, end = int(match.group(2)), int(match.group(3))
    lines = (ROOT / path).read_text().splitlines()
    found = next((i + 1 for i, line in enumerate(lines) if text in line), None)
    if found is None:
        print(f"{path}: `{text}` is gone; fix this entry by hand", file=sys.stderr)
        return match.group(0)
    last = min(len(lines), found + (end - start))
    return f"[{path} L{found}-L{last}](../{path}#L{found}-L{last}) `{text}`"


def main():
    doc = ROOT / "docs/best-practices.md"
    doc.write_text(LINK.sub(refresh, doc.read_text()))


if __name__ == "__main__":
    main()
