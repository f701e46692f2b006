"""``deploy/docker/serving_requirements.py``, the script the image build uses to pick the serving requirements
out of the wheel: run as the Dockerfile runs it, on small wheels made here."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "docker" / "serving_requirements.py"

METADATA = """Metadata-Version: 2.1
Name: demo
Version: 1.0
Requires-Dist: numpy<3,>=2.0
Requires-Dist: onnxruntime>=1.20
Requires-Dist: tomli>=2; python_version < "3.11"
Requires-Dist: uvicorn[standard]>=0.30
Provides-Extra: torch
Requires-Dist: torch==2.13.0; extra == "torch"
Requires-Dist: onnx==1.23.2; (python_version >= "3.9") and extra == 'convert'
"""


def _wheel(folder: Path, metadata: str) -> Path:
    path = folder / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("demo/__init__.py", "")
        archive.writestr("demo-1.0.dist-info/METADATA", metadata)
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_prints_the_requirements_outside_every_extra_markers_kept(tmp_path: Path) -> None:
    result = _run(str(_wheel(tmp_path, METADATA)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "numpy<3,>=2.0",
        "onnxruntime>=1.20",
        'tomli>=2; python_version < "3.11"',
        "uvicorn[standard]>=0.30",
    ]


def test_replaces_onnxruntime_by_the_gpu_build(tmp_path: Path) -> None:
    result = _run(str(_wheel(tmp_path, METADATA)), "--onnxruntime", "onnxruntime-gpu==1.31.1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "onnxruntime-gpu==1.31.1" in lines
    assert not any(line.startswith("onnxruntime>") for line in lines)
    assert len(lines) == 4


def test_refuses_a_replacement_with_nothing_to_replace(tmp_path: Path) -> None:
    metadata = METADATA.replace("Requires-Dist: onnxruntime>=1.20\n", "")
    result = _run(str(_wheel(tmp_path, metadata)), "--onnxruntime", "onnxruntime-gpu==1.31.1")
    assert result.returncode == 2
    assert "no 'onnxruntime' requirement" in result.stderr
    assert result.stdout == ""


def test_names_a_file_that_is_not_a_wheel(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.whl"
    bogus.write_text("not a zip")
    result = _run(str(bogus))
    assert result.returncode == 2
    assert "serving_requirements:" in result.stderr
    missing = _run(str(tmp_path / "absent.whl"))
    assert missing.returncode == 2
    assert "absent.whl" in missing.stderr
