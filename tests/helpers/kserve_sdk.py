"""KServe's own Python SDK in a virtual environment of its own, for tests that call the server with it.

kserve 0.21 requires ``psutil<6`` (the project's environment has psutil 7) and pulls pandas, kubernetes and
cloudevents, so it is not a test extra: :func:`kserve_python` makes ``build/kserve-sdk/`` once (pip, from
the package index; ~1 minute cold) and reuses it. The venv is built beside its final path and renamed into
place, so a run stopped half-way, or two runs at once, never leave a broken one behind.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["KSERVE_REQUIREMENT", "kserve_python"]

KSERVE_REQUIREMENT = "kserve==0.21.0"
_ROOT = Path(__file__).resolve().parents[2]
_VENV = _ROOT / "build" / "kserve-sdk"
_INSTALL_TIMEOUT_S = 600


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _works(venv: Path) -> bool:
    if not _python(venv).is_file():
        return False
    check = subprocess.run(
        [str(_python(venv)), "-c", "import kserve"], capture_output=True, timeout=120, check=False
    )
    return check.returncode == 0


def kserve_python() -> Path:
    """The interpreter of a virtual environment holding :data:`KSERVE_REQUIREMENT` (made if missing).

    Raises ``RuntimeError`` with pip's output if it cannot be installed."""
    if _works(_VENV):
        return _python(_VENV)
    _VENV.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".kserve-sdk-", dir=_VENV.parent))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True, timeout=120)
        # Renaming a venv breaks only its console scripts' shebangs; the tests run its python itself.
        install = subprocess.run(
            [str(_python(staging)), "-m", "pip", "install", "-q", KSERVE_REQUIREMENT],
            capture_output=True,
            text=True,
            timeout=_INSTALL_TIMEOUT_S,
            check=False,
        )
        if install.returncode != 0:
            output = f"{install.stdout}\n{install.stderr}"
            raise RuntimeError(f"pip install {KSERVE_REQUIREMENT} failed:\n{output}")
        shutil.rmtree(_VENV, ignore_errors=True)
        try:
            staging.rename(_VENV)
        except OSError:  # another run renamed its own into place first: use that one
            if not _works(_VENV):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _python(_VENV)
