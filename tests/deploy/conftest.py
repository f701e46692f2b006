"""The serving image, built by podman once per test session (see :mod:`tests.deploy.container_engine`)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.deploy.container_engine import Engine, EngineMissing, engine


@dataclass(frozen=True)
class BuiltImage:
    """An image this session built, and what building it cost."""

    engine: Engine
    tag: str
    seconds: float


@pytest.fixture(scope="session")
def podman() -> Engine:
    try:
        podman = engine()
        podman.ensure_base()
    except EngineMissing as error:
        # make test installs them as root (tests/system_packages.sh); a developer's machine without
        # podman runs the rest of the suite.
        pytest.skip(str(error))
    return podman


@pytest.fixture(scope="session")
def serving_image(podman: Engine) -> Iterator[BuiltImage]:
    """The CPU image, built from the Dockerfile as ``make image`` builds it; removed after the session.

    ``CONTAINER_TEST_IMAGE=TAG`` tests an image built already (``make image``) instead, and keeps it.
    """
    given = os.environ.get("CONTAINER_TEST_IMAGE")
    if given:
        yield BuiltImage(podman, given, 0.0)
        return
    tag = f"localhost/modelport-test:{os.getpid()}"
    started = time.monotonic()
    podman.build(tag)
    try:
        yield BuiltImage(podman, tag, time.monotonic() - started)
    finally:
        podman.remove_image(tag)


@pytest.fixture(scope="session")
def builder_image(podman: Engine) -> Iterator[BuiltImage]:
    """The Dockerfile's builder stage alone (its ``/dist``: the wheel and both requirements files)."""
    tag = f"localhost/modelport-test-builder:{os.getpid()}"
    started = time.monotonic()
    podman.build(tag, variant="cuda", target="builder")
    try:
        yield BuiltImage(podman, tag, time.monotonic() - started)
    finally:
        podman.remove_image(tag)
