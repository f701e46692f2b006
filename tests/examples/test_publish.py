"""How a recipe's freshly built model folder replaces the published one: by renames, never losing both."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.publish import replace_folder


def _folder(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def _contents(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in path.iterdir()}


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """``models/mlp`` as a previous build left it."""
    return _folder(tmp_path / "models" / "mlp", {"config.yaml": "old", "labels.txt": "old labels"})


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    """The hidden staging folder a build works in, inside the repository."""
    return _folder(tmp_path / "models" / ".mlp-staging", {})


def test_the_new_folder_replaces_the_old_one_and_the_old_one_is_deleted(
    published: Path, staging: Path
) -> None:
    new = _folder(staging / "mlp", {"config.yaml": "new"})
    replace_folder(published, new, staging / "previous")
    assert _contents(published) == {"config.yaml": "new"}  # no stale labels.txt
    assert not new.exists() and not (staging / "previous").exists()


def test_a_first_publication_just_moves_the_folder_in(tmp_path: Path, staging: Path) -> None:
    target = tmp_path / "models" / "digits"
    replace_folder(target, _folder(staging / "digits", {"config.yaml": "new"}), staging / "previous")
    assert _contents(target) == {"config.yaml": "new"}


@pytest.fixture
def other_file_system(tmp_path: Path) -> Iterator[Path]:
    """A folder on another file system than ``tmp_path`` (a rename from there fails with EXDEV)."""
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as where:
        if os.stat(where).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("no second file system to rename across")
        yield Path(where)


def test_a_failed_rename_from_another_file_system_puts_the_old_folder_back(
    published: Path, staging: Path, other_file_system: Path
) -> None:
    new = _folder(other_file_system / "mlp", {"config.yaml": "new"})
    with pytest.raises(OSError) as failure:
        replace_folder(published, new, staging / "previous")
    assert failure.value.errno == errno.EXDEV
    assert _contents(published) == {"config.yaml": "old", "labels.txt": "old labels"}
    assert not (staging / "previous").exists()
    assert _contents(new) == {"config.yaml": "new"}


def test_a_new_folder_that_is_gone_leaves_the_old_one_in_place(published: Path, staging: Path) -> None:
    with pytest.raises(FileNotFoundError):
        replace_folder(published, staging / "mlp", staging / "previous")
    assert _contents(published) == {"config.yaml": "old", "labels.txt": "old labels"}
    assert not (staging / "previous").exists()
