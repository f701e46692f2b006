"""The shell and Python code blocks of the project's Markdown pages, with the markers the doc tests read.

A block is a fenced block whose info string is ``sh``, ``bash``, ``shell`` or ``python``. HTML comments on the
lines right above its fence (invisible when the page is rendered) say how the tests treat it:

- ``<!-- not-tested: REASON -->``: not run here (it needs Docker, a GPU, a cluster, your own files); the
  reason must be given.
- ``<!-- expect: REGEX -->`` (any number): the block's output must match each (``re.MULTILINE``).

Every other block is run (see ``test_readme_commands``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LANGUAGES", "CodeBlock", "code_blocks"]

LANGUAGES = {"sh": "shell", "bash": "shell", "shell": "shell", "python": "python"}
_FENCE = re.compile(r"^```(\S*)[ \t]*$")
_MARKER = re.compile(r"^<!--\s*(not-tested|expect):\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """One block: where it starts (page and 1-based line of its fence), its kind, code and markers."""

    page: str
    line: int
    kind: str  # "shell" or "python"
    code: str
    not_tested: str | None = None
    expect: tuple[str, ...] = field(default=())

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def code_blocks(path: Path, page: str) -> list[CodeBlock]:
    """The shell and Python blocks of ``path`` (named ``page`` in messages), in page order.

    Raises ``ValueError`` naming the line for a ``not-tested`` marker without a reason or a fence left open.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[CodeBlock] = []
    index = 0
    while index < len(lines):
        opened = _FENCE.match(lines[index])
        if opened is None:
            index += 1
            continue
        end = next((j for j in range(index + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"{page}:{index + 1}: code block never closed")
        kind = LANGUAGES.get(opened.group(1))
        if kind is not None:
            not_tested, expect = _markers(lines, index, page)
            code = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(CodeBlock(page, index + 1, kind, code, not_tested, tuple(expect)))
        index = end + 1
    return blocks


def _markers(lines: list[str], fence: int, page: str) -> tuple[str | None, list[str]]:
    """The markers in the comment lines directly above line ``fence`` (0-based)."""
    not_tested: str | None = None
    expect: list[str] = []
    above = fence - 1
    while above >= 0 and (marker := _MARKER.match(lines[above].strip())) is not None:
        name, value = marker.groups()
        if name == "not-tested":
            if not value:
                raise ValueError(f"{page}:{above + 1}: not-tested needs a reason")
            not_tested = value
        else:
            expect.insert(0, value)
        above -= 1
    return not_tested, expect
