"""Reading the files a model's folder holds besides the model (``config.yaml``, label files) without trusting
them.

A repository is written by people and tools, and a load request can point into it; so a file is read only if
it is a regular file (a FIFO would block the reader forever, ``/dev/zero`` would never end), up to a size
limit, as UTF-8, and a label file only inside its model's folder. The open is non-blocking (``O_NONBLOCK``:
opening a FIFO without a writer returns at once) and the type is checked with ``fstat`` on the opened
descriptor, so what is checked is what is read. YAML is checked for depth and aliases as a stream of events
(PyYAML's parser is iterative) before it is composed (which recurses): a 3000-level document or an alias
bomb is refused instead of exhausting the stack or the memory. These are blocking reads: call them off the
event loop.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

__all__ = [
    "CONFIG_MAX_BYTES",
    "LABELS_MAX_BYTES",
    "YAML_MAX_DEPTH",
    "UnreadableFile",
    "check_relative_path",
    "load_yaml",
    "read_bytes",
    "read_text",
    "require_regular_file",
    "resolve_inside",
]

CONFIG_MAX_BYTES = 1 * 2**20  # a config.yaml is a few KiB; a MiB is generous and still cheap to parse
# ~150k labels of 100 bytes (a tokenizer's vocabulary); ImageNet-21k's are ~0.5 MiB
LABELS_MAX_BYTES = 16 * 2**20
YAML_MAX_DEPTH = 32  # config.yaml's schema nests 4 levels
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it: 10x faster


class UnreadableFile(ValueError):
    """A file that exists but is refused; the message says why, without the path (the caller names it)."""


def read_text(path: Path, *, limit: int) -> str:
    """The UTF-8 text of the regular file ``path``, at most ``limit`` bytes.

    Raises ``FileNotFoundError`` when it does not exist, :class:`UnreadableFile` for anything else.
    """
    data = read_bytes(path, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableFile(
            f"is not UTF-8 text (byte {error.start} is 0x{data[error.start]:02x}); save it as UTF-8"
        ) from None


def read_bytes(path: Path, *, limit: int) -> bytes:
    """The contents of the regular file ``path``, at most ``limit`` bytes; errors as :func:`read_text`'s."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise UnreadableFile(f"cannot be opened ({error.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"is not a regular file (it is {_kind(info.st_mode)}); give a plain file")
        if info.st_size > limit:
            raise UnreadableFile(f"is {info.st_size} bytes, more than the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:  # the file may grow after the fstat: read no more than limit + 1 bytes
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise UnreadableFile(f"cannot be read ({error.strerror})") from None
    finally:
        os.close(fd)
    if size > limit:
        raise UnreadableFile(f"grew beyond the limit of {limit} bytes while it was read")
    return b"".join(chunks)


def require_regular_file(path: Path) -> None:
    """:class:`UnreadableFile` unless ``path`` (links followed) is a regular file or does not exist (its
    reader reports that): for files another library opens (``model.onnx``), which a FIFO would block."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise UnreadableFile(f"cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFile(f"is not a regular file (it is {_kind(info.st_mode)}); give a plain file")


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def load_yaml(text: str) -> Any:
    """``text`` parsed as YAML (safe types only); :class:`UnreadableFile` if it nests deeper than
    :data:`YAML_MAX_DEPTH` or uses an alias, ``yaml.YAMLError`` if it is not YAML."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > YAML_MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise UnreadableFile(f"nests deeper than {YAML_MAX_DEPTH} levels (line {line})")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            # Aliases can expand a small file into an exponentially large value: write the value out.
            raise UnreadableFile(f"uses the YAML alias *{event.anchor}; aliases are not supported here")
    return yaml.load(text, Loader=_Loader)  # a safe loader (CSafeLoader or SafeLoader)


def check_relative_path(value: str) -> str:
    """``value`` if it is a relative path that stays where it starts (no ``..``, not absolute, not empty);
    ``ValueError`` saying what to fix otherwise."""
    path = PurePosixPath(value)
    if not value or value.strip() != value:
        raise ValueError(f"{value!r}: give a file name relative to the model's folder")
    if path.is_absolute() or "\\" in value or "\x00" in value:
        raise ValueError(f"'{value}': an absolute path; give a file name relative to the model's folder")
    if ".." in path.parts:
        raise ValueError(f"'{value}': '..' is not allowed; the file must be inside the model's folder")
    return value


def resolve_inside(folder: Path, relative: str) -> Path:
    """``folder / relative`` with every link resolved; :class:`UnreadableFile` if that leaves ``folder``
    (a symbolic link pointing out), ``FileNotFoundError`` if it does not exist."""
    try:
        check_relative_path(relative)
    except ValueError as error:
        raise UnreadableFile(str(error)) from None
    root = folder.resolve()
    target = (root / relative).resolve(strict=True)
    if not target.is_relative_to(root):
        raise UnreadableFile("leads outside the model's folder through a symbolic link; keep the file inside")
    return target
