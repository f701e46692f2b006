"""Build and run the serving image with podman, as ``make image`` and the container tests both do.

On the project's machines (Debian 12, root, no Docker daemon, no reachable image registry) podman runs
real OCI containers with runc and the cgroupfs manager, and only with explicit rlimits at or below the
current ones (crun refuses the hybrid cgroups). The base image is made from Debian's packages with
``mmdebstrap`` and imported once. The build is the Dockerfile's as Docker users run it; the differences,
all here:

- ``--build-arg PYTHON_IMAGE=localhost/modelport-base:bookworm``: the locally made base;
- ``--build-arg VARIANT=cpu`` spelled out: buildah 1.28 resolves ``FROM base-${VARIANT}`` to the stage
  only for an argument given on the command line (containers/buildah#4312), not for its default;
- ``--layers=false``: buildah 1.28 bind-mounts an empty folder for ``RUN --mount=from=builder`` when the
  builder stage came from the layer cache (containers/buildah#4375);
- ``--format docker``: the OCI image format has no HEALTHCHECK;
- the CA bundle pip trusts here (a TLS-inspecting proxy) as the build secret ``pip-ca``, mounted only into
  the steps that run pip, so the image keeps no trace of it.

Standard library only: ``make image`` runs it before any virtual environment exists
(``python3 -m tests.deploy.container_engine build``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BASE_IMAGE",
    "Container",
    "Engine",
    "EngineFailed",
    "EngineMissing",
    "ca_bundle",
    "engine",
]

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/modelport-base:bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
# At or below this machine's own limits: runc cannot raise them (no CAP_SYS_RESOURCE).
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
_STEP_TIMEOUT_S = 900.0


class EngineMissing(RuntimeError):
    """podman (or, for a base image not made yet, mmdebstrap) is not installed."""


class EngineFailed(subprocess.CalledProcessError):
    """A podman command exited non-zero; its message holds the command's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.stderr or ''}"


def ca_bundle() -> Path | None:
    """The CA bundle pip trusts on this machine (``PIP_CERT``, else pip's configured ``cert``, else
    ``SSL_CERT_FILE``), if any."""
    named = os.environ.get("PIP_CERT")
    if not named:
        try:
            listed = subprocess.run(
                [sys.executable, "-m", "pip", "config", "list"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            listed = ""
        certs = [line.split("=", 1)[1].strip("'\" ") for line in listed.splitlines() if ".cert=" in line]
        named = certs[-1] if certs else os.environ.get("SSL_CERT_FILE", "")
    return Path(named) if named and Path(named).is_file() else None


@dataclass(frozen=True)
class Engine:
    """The podman command line that works on this machine."""

    command: tuple[str, ...] = ("podman", "--runtime", "runc", "--cgroup-manager=cgroupfs")

    def run(
        self, *args: str, timeout: float = 120.0, check: bool = True, capture: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``podman ARGS``; raises :class:`EngineFailed` (stderr included) when *check* and it fails."""
        result = subprocess.run(
            [*self.command, *args], capture_output=capture, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise EngineFailed(result.returncode, result.args, output=result.stdout, stderr=result.stderr)
        return result

    def image_exists(self, tag: str) -> bool:
        return self.run("image", "exists", tag, check=False).returncode == 0

    def ensure_base(self, tag: str = BASE_IMAGE) -> None:
        """Make the base image (minimal Debian bookworm with Python 3.11 and venv) unless it exists."""
        if self.image_exists(tag):
            return
        if shutil.which("mmdebstrap") is None:
            raise EngineMissing(f"mmdebstrap is needed to make {tag}: apt-get install mmdebstrap")
        print(f"making {tag} with mmdebstrap (Debian bookworm: {BASE_PACKAGES})", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="modelport-base-") as scratch:
            tarball = Path(scratch) / "base.tar"
            subprocess.run(
                ["mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(tarball)],
                capture_output=True,
                text=True,
                timeout=_STEP_TIMEOUT_S,
                check=True,
            )
            self.run("import", str(tarball), tag, timeout=_STEP_TIMEOUT_S)

    def build(
        self,
        tag: str,
        *,
        variant: str = "cpu",
        target: str | None = None,
        context: Path = ROOT,
        python_image: str | None = BASE_IMAGE,
        echo: bool = False,
    ) -> float:
        """Build the Dockerfile in *context* as *tag*; returns the seconds it took. *python_image*: the
        ``PYTHON_IMAGE`` argument (None: the Dockerfile's default, pulled). *echo*: show the output."""
        if python_image == BASE_IMAGE:
            self.ensure_base()
        args = [
            "build",
            "--format",
            "docker",
            "--layers=false",
            *ULIMITS,
            "--network",
            "host",
            "--build-arg",
            f"VARIANT={variant}",
            "-t",
            tag,
        ]
        if python_image is not None:
            args += ["--build-arg", f"PYTHON_IMAGE={python_image}"]
        bundle = ca_bundle()
        if bundle is not None:
            args += ["--secret", f"id=pip-ca,src={bundle}"]
        if target is not None:
            args += ["--target", target]
        started = time.monotonic()
        self.run(*args, str(context), timeout=_STEP_TIMEOUT_S, capture=not echo)
        return time.monotonic() - started

    def size_bytes(self, tag: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())

    def inspect(self, tag: str) -> dict[str, object]:
        """The image's configuration (``Config``: User, Env, Healthcheck, Entrypoint, ...)."""
        config: dict[str, object] = json.loads(self.run("image", "inspect", tag).stdout)[0]["Config"]
        return config

    def run_image(
        self,
        image: str,
        *args: str,
        entrypoint: str,
        options: Sequence[str] = ("--network", "none"),
        timeout: float = 120.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``podman run --rm`` of one command in *image* (no network unless *options* say otherwise)."""
        return self.run(
            "run",
            "--rm",
            *ULIMITS,
            *options,
            "--entrypoint",
            entrypoint,
            image,
            *args,
            timeout=timeout,
            check=check,
        )

    def distributions(self, tag: str) -> dict[str, str]:
        """Name -> version of every distribution the image's Python sees (its site-packages)."""
        listing = self.run_image(
            tag,
            "-c",
            "import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
            entrypoint="python",
        ).stdout
        found: dict[str, str] = json.loads(listing)
        return found

    def site_packages(self, tag: str) -> list[str]:
        """What the folders of the image's ``site.getsitepackages()`` hold (packages, ``*.dist-info``)."""
        listing = self.run_image(
            tag,
            "-c",
            "import json, os, site; folders = [d for d in site.getsitepackages() if os.path.isdir(d)]; "
            "print(json.dumps(sorted(n for d in folders for n in os.listdir(d))))",
            entrypoint="python",
        ).stdout
        found: list[str] = json.loads(listing)
        return found

    def remove_image(self, tag: str) -> None:
        self.run("rmi", "--force", tag, check=False)

    @contextmanager
    def container(self, image: str, *options: str, args: Sequence[str] = ()) -> Iterator[Container]:
        """``podman run -d`` with the ports 8000-8002 published on 127.0.0.1 ephemeral ports; removed on
        exit, whatever state it is in."""
        published = [flag for port in (8000, 8001, 8002) for flag in ("-p", f"127.0.0.1::{port}")]
        started = self.run("run", "-d", *ULIMITS, *published, *options, image, *args, timeout=120)
        running = Container(self, started.stdout.strip().splitlines()[-1])
        try:
            yield running
        finally:
            self.run("rm", "--force", "--time", "5", running.id, check=False, timeout=60)


@dataclass(frozen=True)
class Container:
    """One container started by :meth:`Engine.container`."""

    engine: Engine
    id: str

    def logs(self) -> str:
        result = self.engine.run("logs", self.id, check=False)
        return result.stdout + result.stderr

    def state(self) -> dict[str, object]:
        state: dict[str, object] = json.loads(self.engine.run("inspect", self.id).stdout)[0]["State"]
        return state

    def address(self, port: int) -> str:
        """``127.0.0.1:HOSTPORT`` that the container's *port* is published on."""
        mapped = self.engine.run("port", self.id, f"{port}/tcp").stdout.strip().splitlines()[0]
        return mapped.replace("0.0.0.0", "127.0.0.1")

    def wait_for_log(self, text: str, timeout: float = 60.0) -> str:
        """The logs once they contain *text*; ``AssertionError`` with them if it exits first or times out."""
        deadline = time.monotonic() + timeout
        while True:
            logs = self.logs()
            if text in logs:
                return logs
            if self.state().get("Status") != "running":
                raise AssertionError(f"container exited before logging {text!r}:\n{logs}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the log after {timeout:.0f} s:\n{logs}")
            time.sleep(0.2)

    def exec(self, *command: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return self.engine.run("exec", self.id, *command, timeout=timeout, check=False)

    def healthcheck(self) -> int:
        """``podman healthcheck run``: the image's HEALTHCHECK command, run in the container; 0 healthy."""
        return self.engine.run("healthcheck", "run", self.id, check=False, timeout=60).returncode

    def stop(self, timeout: float) -> int:
        """``podman stop`` (the image's STOPSIGNAL, SIGKILL after *timeout*); the exit code."""
        self.engine.run("stop", "--time", str(int(timeout)), self.id, timeout=timeout + 60)
        code = self.state()["ExitCode"]
        assert isinstance(code, int)
        return code


def engine() -> Engine:
    """The engine, or :class:`EngineMissing` saying what to install."""
    if shutil.which("podman") is None or shutil.which("runc") is None:
        raise EngineMissing("podman and runc are not installed (apt-get install podman runc mmdebstrap)")
    return Engine()


def _build_command(options: argparse.Namespace) -> int:
    podman = engine()
    seconds = podman.build(options.tag, variant=options.variant, echo=True)
    distributions = {name.lower() for name in podman.distributions(options.tag)}
    listed = {entry.split("-")[0].lower() for entry in podman.site_packages(options.tag)}
    frameworks = sorted(
        (distributions | listed) & {"torch", "tensorflow", "tensorflow-cpu", "keras", "tf2onnx"}
    )
    print(
        f"{options.tag}: {podman.size_bytes(options.tag) / 2**20:.0f} MiB, built in {seconds:.0f} s; "
        f"{len(distributions)} distributions in its site-packages, frameworks: {frameworks or 'none'}"
    )
    return 1 if frameworks else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.deploy.container_engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the image with podman, print its size and frameworks")
    build.add_argument("--tag", default="localhost/modelport:0.1.0")
    build.add_argument("--variant", default="cpu", choices=["cpu", "cuda"])
    build.set_defaults(handler=_build_command)
    options = parser.parse_args(argv)
    try:
        code: int = options.handler(options)
    except EngineMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as error:
        print(
            f"error: {' '.join(error.cmd)} exited {error.returncode}\n{error.stderr or ''}", file=sys.stderr
        )
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
