"""The model name and version rule itself: what it accepts is always one harmless path component, and what it
refuses is refused with a message naming the field and the rule (the routes that apply it are walked in
``tests/reliability/test_traversal.py``)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelport.server.errors import InvalidInput
from modelport.server.names import (
    MAX_NAME_LENGTH,
    MAX_VERSION_DIGITS,
    check_model_name,
    check_version,
    is_model_name,
)


@pytest.mark.parametrize(
    "name", ["mlp", "resnet50_v1.5", "a", "x+y@z=w,~", "-dash", "_", "m" * MAX_NAME_LENGTH]
)
def test_names_that_are_names(name: str) -> None:
    assert check_model_name(name) == name and is_model_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        ".hidden",
        "a/b",
        "/abs",
        "..\\x",
        "a b",
        "a\x00b",
        "a\nb",
        "²",
        "é",
        "m" * (MAX_NAME_LENGTH + 1),
    ],
)
def test_names_that_are_not(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_model_name(name, field="the field")
    message = caught.value.message
    assert message.startswith("the field ") and f"1 to {MAX_NAME_LENGTH} ASCII" in message
    assert "\x00" not in message and "\n" not in message  # quoted escaped: a log line stays one line
    assert len(message) < 400  # a huge name is not echoed whole


@given(st.text(max_size=200))
@settings(max_examples=2000, deadline=None)
def test_an_accepted_name_is_one_harmless_path_component(name: str) -> None:
    if not is_model_name(name):
        return
    assert name.isascii() and name.isprintable() and 1 <= len(name) <= MAX_NAME_LENGTH
    assert os.path.basename(name) == name and name not in (".", "..") and not name.startswith(".")
    assert os.path.normpath(os.path.join("/repo", name)) == f"/repo/{name}"


@pytest.mark.parametrize("version", ["1", "42", "0", "9" * MAX_VERSION_DIGITS])
def test_versions_that_are_versions(version: str) -> None:
    assert check_version(version) == version
    assert int(version) < 2**63  # Triton's int64


@pytest.mark.parametrize(
    "version", ["²", "\u0661", "1.0", "-1", "+1", " 1", "1 ", "0x1", "../1", "9" * 19, "9" * 5000]
)
def test_versions_that_are_not(version: str) -> None:
    with pytest.raises(InvalidInput, match="is not a version number"):
        check_version(version)


def test_an_empty_version_is_the_latest_only_where_allowed() -> None:
    assert check_version("") == ""
    with pytest.raises(InvalidInput, match="path: model version '' is not a version number"):
        check_version("", field="path: model version", latest=False)
