"""The docs name exactly the environment variables ``modelport serve`` reads: ``docs/settings.md`` documents
every one (its table is generated from the settings), and no page names one that the server does not read.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from modelport.server.serve_cli import serve

ROOT = Path(__file__).resolve().parents[2]
READ = {parameter.envvar for parameter in serve.params if isinstance(parameter.envvar, str)}


def _named(path: Path) -> set[str]:
    return set(re.findall(r"\bMODELPORT_[A-Z_]+[A-Z]\b", path.read_text()))


def test_docs_settings_names_every_variable_the_server_reads() -> None:
    missing = READ - _named(ROOT / "docs" / "settings.md")
    assert not missing, f"docs/settings.md does not document {sorted(missing)}"


PAGES = ["README.md", *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES)
def test_the_docs_name_no_variable_the_server_does_not_read(page: str) -> None:
    unknown = _named(ROOT / page) - READ
    assert not unknown, f"{page} names {sorted(unknown)}, which modelport serve does not read"
