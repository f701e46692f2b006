"""The commands of README.md and docs/*.md are tests: each shell and Python block runs against a real server.

How a block runs (the rules a page's author can rely on):

- A block marked ``<!-- not-tested: REASON -->`` (see :mod:`tests.docs.markdown_blocks`) is reported as
  skipped with its reason; every other ``sh``/``python`` block runs, so a page change that breaks a command
  fails ``make test``.
- Each block gets a server of its own, on that folder's copy of ``models/`` and 127.0.0.1 ephemeral ports;
  the block's addresses are rewritten to them: ``localhost:8000`` (or ``127.0.0.1:8000``) to REST, ``:8001``
  gRPC, ``:8002`` metrics, ``:8081`` management; ``python -m examples.client_http``/``client_grpc`` get
  ``--url`` (their defaults are the documented ports).
- It runs in a scratch folder laid out as the checkout (``examples`` and ``models`` copied, so a block
  never writes the committed ones; ``.venv`` linked) that also holds ``request.json``, an ``mlp`` request,
  and, for a block that names it, the README's ``model.pt2`` (a small
  ``torch.export`` program with a dynamic batch, made with torch in a subprocess), with this environment's
  ``bin`` first on ``PATH`` (``python``, ``modelport``).
  Shell blocks run under ``bash -e -o pipefail``, with ``curl`` made to fail on an HTTP error
  (``--fail-with-body``): every command must succeed, a 4xx included. Python blocks run with ``python -c``.
  A block still running after 90 s is killed with everything it started, and fails.
- Each ``<!-- expect: REGEX -->`` must match the block's output (stdout, then stderr: the converter commands
  report on stderr).
- The README's serving blocks (those naming no converter command) also run from a fresh environment made as
  ``make serve`` makes it (``pip install '.[client]'``, about 45 s; marked slow), so a client example that
  needs a package only ``make test`` installs fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.markdown_blocks import CodeBlock, code_blocks
from tests.helpers.server_process import ServerProcess, start_server

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", *sorted(f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md"))]
BLOCKS = [block for page in PAGES for block in code_blocks(ROOT / page, page)]
_DOCUMENTED = {"8000": "http_port", "8001": "grpc_port", "8002": "metrics_port", "8081": "management_port"}
_ADDRESS = re.compile(r"\b(?:localhost|127\.0\.0\.1):(8000|8001|8002|8081)\b")
_EXAMPLE = re.compile(r"-m examples\.client_(http|grpc)\b")
_SHELL_PRELUDE = 'curl() { command curl --fail-with-body --max-time 30 "$@"; }\n'
_BLOCK_TIMEOUT_S = 90


def rewrite(code: str, ports: dict[str, int]) -> str:
    """``code`` with the documented ports replaced by the test server's ``ports`` (as in its ready file)."""
    code = _ADDRESS.sub(lambda m: f"127.0.0.1:{ports[_DOCUMENTED[m.group(1)]]}", code)
    return _EXAMPLE.sub(
        lambda m: (
            f"{m.group(0)} --url 127.0.0.1:{ports['http_port' if m.group(1) == 'http' else 'grpc_port']}"
        ),
        code,
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder laid out as the checkout (its ``.venv`` this environment's), plus the blocks' input files."""
    return _lay_out(tmp_path, Path(sys.executable).parent.parent)


def _lay_out(tmp_path: Path, venv: Path) -> Path:
    (tmp_path / ".venv").symlink_to(venv, target_is_directory=True)
    for name in ("examples", "models"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    request = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 64], "data": [0.5] * 64}]}
    (tmp_path / "request.json").write_text(json.dumps(request))
    return tmp_path


_TORCH_PROGRAM = """
import torch
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).eval()
batch = torch.export.Dim("batch")
program = torch.export.export(model, (torch.randn(2, 8),), dynamic_shapes=({0: batch},))
torch.export.save(program, "model.pt2")
"""


def _make_sources(block: CodeBlock, workspace: Path) -> None:
    """The source files a conversion block names, made in ``workspace`` (torch only where one is needed)."""
    if "model.pt2" in block.code:
        subprocess.run([sys.executable, "-c", _TORCH_PROGRAM], cwd=workspace, check=True, timeout=120)


@pytest.fixture
def server(workspace: Path) -> Iterator[ServerProcess]:
    with start_server(workspace / "models") as running:
        yield running


def _run(block: CodeBlock, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``block`` (as ``code``) in ``cwd`` with ``cwd/.venv``'s ``bin`` first on ``PATH``."""
    bin_folder = str(cwd / ".venv" / "bin")
    environment = {**os.environ, "PATH": f"{bin_folder}{os.pathsep}{os.environ.get('PATH', '')}"}
    if block.kind == "shell":
        command = ["bash", "-e", "-o", "pipefail", "-c", _SHELL_PRELUDE + code]
    else:
        command = [str(cwd / ".venv" / "bin" / "python"), "-c", code]
    return subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=_BLOCK_TIMEOUT_S,
        check=False,
    )


@pytest.mark.parametrize("block", BLOCKS, ids=[block.where for block in BLOCKS])
def test_the_block_runs(block: CodeBlock, request: pytest.FixtureRequest) -> None:
    if block.not_tested is not None:
        pytest.skip(f"{block.where} not tested here: {block.not_tested}")
    workspace: Path = request.getfixturevalue("workspace")
    server: ServerProcess = request.getfixturevalue("server")
    _make_sources(block, workspace)
    _check(block, server, workspace)


def _check(block: CodeBlock, server: ServerProcess, workspace: Path) -> None:
    result = _run(block, rewrite(block.code, server.ports), workspace)
    shown = f"{block.where} ({block.kind}) exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, shown
    for pattern in block.expect:
        assert re.search(pattern, result.stdout + result.stderr, re.MULTILINE), (
            f"{block.where}: no match for {pattern!r}\n{shown}"
        )


def test_the_pages_have_blocks_to_run() -> None:
    # The parser finds the pages' blocks, and most of the README's run.
    readme = [block for block in BLOCKS if block.page == "README.md"]
    assert len(readme) >= 3 and any(block.not_tested is None for block in readme)


def test_the_markers_are_read(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- not-tested: needs a GPU -->\n```sh\nnvidia-smi\n```\n\ntext\n"
        "<!-- expect: ^ok$ -->\n<!-- expect: b -->\n```python\nprint('ok')\n```\n```yaml\na: 1\n```\n"
    )
    gpu, python = code_blocks(page, "page.md")
    assert (gpu.kind, gpu.not_tested, gpu.line, gpu.code) == ("shell", "needs a GPU", 2, "nvidia-smi\n")
    assert (python.kind, python.not_tested, python.expect) == ("python", None, ("^ok$", "b"))
    page.write_text("<!-- not-tested: -->\n```sh\nls\n```\n")
    with pytest.raises(ValueError, match=r"page\.md:1: not-tested needs a reason"):
        code_blocks(page, "page.md")


def test_the_rewrite_points_at_the_test_server() -> None:
    ports = {"http_port": 1, "grpc_port": 2, "metrics_port": 3, "management_port": 4}
    code = "curl localhost:8000/x 127.0.0.1:8002 localhost:8081/m localhost:80000\n"
    code += "python -m examples.client_grpc"
    assert rewrite(code, ports) == (
        "curl 127.0.0.1:1/x 127.0.0.1:3 127.0.0.1:4/m localhost:80000\n"
        "python -m examples.client_grpc --url 127.0.0.1:2"
    )


# The README's serving blocks again, from the environment make serve makes ('.[client]', no torch, TensorFlow
# or scikit-learn): a block that needs more fails here. Blocks naming a converter command need make test's.
_CONVERTER = re.compile(r"\bmodelport (convert|quantize|export-mobile)\b")
SERVING = [
    b for b in BLOCKS if b.page == "README.md" and b.not_tested is None and not _CONVERTER.search(b.code)
]


@pytest.fixture(scope="module")
def serve_environment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with what ``make serve`` installs (``pip install '.[client]'``)."""
    venv = tmp_path_factory.mktemp("serve-env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", "install"]
    subprocess.run([*pip, f"{ROOT}[client]"], check=True, timeout=600, capture_output=True)
    return venv


@pytest.mark.slow
@pytest.mark.parametrize("block", SERVING, ids=[block.where for block in SERVING])
def test_the_serving_block_runs_in_make_serves_environment(
    block: CodeBlock, serve_environment: Path, tmp_path: Path
) -> None:
    workspace = _lay_out(tmp_path, serve_environment)
    with start_server(workspace / "models") as server:
        _check(block, server, workspace)
