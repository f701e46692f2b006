"""Logger names follow one scheme: a module logs on ``logging.getLogger(__name__)``.

A hard-coded ``"modelport..."`` name drifts from the module when the module moves; the only ones allowed are
the access log's (a stable name operators route, documented in docs/settings.md) and a package's name, used
to configure all of that package's module loggers at once. The names docs/settings.md tells operators to
filter on must be real modules or packages.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

from modelport.server.observability.access_log import ACCESS_LOGGER

ROOT = Path(__file__).resolve().parent
SOURCES = [
    *sorted((ROOT.parent / "server").rglob("*.py")),
    *sorted((ROOT.parent / "converters").rglob("*.py")),
]
PACKAGES = {"modelport.server", "modelport.converters"}


def _named_loggers(path: Path) -> list[tuple[int, str]]:
    """(line, name) of each ``getLogger("modelport...")`` call with a literal name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
            continue
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        value = node.args[0].value
        if name == "getLogger" and isinstance(value, str) and value.startswith("modelport"):
            found.append((node.lineno, value))
    return found


def test_modules_log_on_their_own_name() -> None:
    assert len(SOURCES) > 50
    wrong = [
        f"{path.relative_to(ROOT.parent)}:{line}: getLogger({name!r}); use getLogger(__name__)"
        for path in SOURCES
        for line, name in _named_loggers(path)
        if name not in PACKAGES
    ]
    assert not wrong, "\n".join(wrong)
    assert (
        ACCESS_LOGGER == "modelport.access"
    )  # the one fixed name (defined as a constant, not a literal call)


def test_the_documented_logger_names_exist() -> None:
    text = (ROOT.parent / "docs" / "settings.md").read_text()
    section = text[text.index("## Log names") :]
    names = set(re.findall(r"`(modelport\.[a-z_.]+)`", section))
    assert ACCESS_LOGGER in names
    names.discard(ACCESS_LOGGER)
    assert len(names) >= 5
    packages = []
    for name in names:
        spec = importlib.util.find_spec(name)
        assert spec is not None, f"docs/settings.md names logger {name}: no such module"
        if spec.submodule_search_locations is not None:
            packages.append(name)
    # The modules listed after a package, as `.pool`, are modules of one of the listed packages.
    for module in set(re.findall(r"`\.([a-z_]+)`", section)):
        assert any(importlib.util.find_spec(f"{package}.{module}") for package in packages), module
