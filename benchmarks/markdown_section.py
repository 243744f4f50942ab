"""Replace (or append) a marked section of a markdown file, so each benchmark rerun updates its own results.

A section is delimited by ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``. The file is written through
a temporary file and renamed.
"""

from __future__ import annotations

import os
from pathlib import Path


def replace_section(path: Path, name: str, body: str) -> None:
    """Put ``body`` between the markers of section ``name`` in ``path`` (appended when absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
