"""Print the serving requirements of a built modelport wheel, one per line, for ``pip install -r``.

Contract: reads ``*.dist-info/METADATA`` of WHEEL and prints every ``Requires-Dist`` that belongs to no extra
(the serving set: no torch, no TensorFlow). With ``--onnxruntime SPEC`` the ``onnxruntime`` requirement is
replaced by SPEC (e.g. ``onnxruntime-gpu==1.31.1``): both distributions install the same ``onnxruntime``
import package, so exactly one of them may be in an environment, and a plain ``pip install WHEEL`` would pull
the CPU one next to the GPU one. The image build (``Dockerfile``) and the container test
(``tests/deploy/test_container.py``) both install through this script, so they install the same set.

Standard library only: it runs in the image's builder stage before anything else is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

__all__ = ["main", "serving_requirements"]

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""\bextra\s*==""")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"cannot read a distribution name from Requires-Dist {requirement!r}")
    return _normalized(match.group(1))


def serving_requirements(wheel: Path, *, onnxruntime: str | None = None) -> list[str]:
    """Return the wheel's requirements outside every extra; replace ``onnxruntime`` by *onnxruntime* if given.

    Raises ``ValueError`` if the wheel has no METADATA or, with a replacement, no ``onnxruntime`` requirement
    (the replacement would silently do nothing).
    """
    with zipfile.ZipFile(wheel) as archive:
        metadata_names = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        if len(metadata_names) != 1:
            raise ValueError(f"{wheel}: expected one .dist-info/METADATA, found {len(metadata_names)}")
        metadata = HeaderParser().parsestr(archive.read(metadata_names[0]).decode("utf-8"))
    requirements: list[str] = []
    replaced = False
    for requirement in metadata.get_all("Requires-Dist") or []:
        _, _, marker = requirement.partition(";")
        if _EXTRA_MARKER.search(marker):
            continue
        if onnxruntime is not None and _requirement_name(requirement) == "onnxruntime":
            requirements.append(onnxruntime)
            replaced = True
            continue
        requirements.append(requirement.strip())
    if onnxruntime is not None and not replaced:
        raise ValueError(f"{wheel}: no 'onnxruntime' requirement to replace by {onnxruntime!r}")
    return requirements


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``serving_requirements.py WHEEL [--onnxruntime SPEC]``; prints to stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("wheel", type=Path, help="the built modelport-*.whl")
    parser.add_argument(
        "--onnxruntime",
        metavar="SPEC",
        help="requirement that replaces onnxruntime (e.g. onnxruntime-gpu==1.31.1)",
    )
    args = parser.parse_args(argv)
    try:
        lines = serving_requirements(args.wheel, onnxruntime=args.onnxruntime)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        print(f"serving_requirements: {error}", file=sys.stderr)
        return 2
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
