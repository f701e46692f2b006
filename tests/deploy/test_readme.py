"""The README's operations section documents exactly the environment variables ``modelport serve`` reads."""

from __future__ import annotations

import re
from pathlib import Path

from modelport.server.serve_cli import serve

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_names_every_variable_the_server_reads_and_no_other() -> None:
    readme = (ROOT / "README.md").read_text()
    read = {parameter.envvar for parameter in serve.params if isinstance(parameter.envvar, str)}
    documented = set(re.findall(r"\bMODELPORT_[A-Z_]+[A-Z]\b", readme))
    missing = read - documented
    assert not missing, f"README.md (## Operations) does not document {sorted(missing)}"
    unknown = documented - read
    assert not unknown, f"README.md names {sorted(unknown)}, which modelport serve does not read"
