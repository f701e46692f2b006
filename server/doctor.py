"""``modelport doctor``: is this machine, and this model repository, ready to serve?

Each check yields :class:`Finding` lines: ``ok`` (fine), ``note`` (worth knowing, e.g. no VNNI for INT8
models), or ``FAIL`` with what to fix. The command prints them all and exits 1 when any failed, 0 otherwise,
so it works as a pre-flight step in a script or a container's init. Models are checked by the server's own
code path (its repository scan, config parser, session loader and config resolution), so a model doctor passes
is one ``modelport serve`` loads, and a refusal reads the same (file and key named).
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click

from .cgroup_limits import cpu_quota, memory_limit_bytes, usable_cpus
from .settings import SETTINGS, ServerSettings

__all__ = ["Finding", "check_environment", "check_ports", "check_repository", "doctor"]

Level = Literal["ok", "note", "FAIL"]
_INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
SHM_MINIMUM_BYTES = 64 * 2**20  # the workers exchange tensors through /dev/shm; Docker's default is 64 MiB


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: its level, what was checked and what was found (for FAIL: what to fix)."""

    level: Level
    topic: str
    text: str

    def render(self) -> str:
        return f"{self.level:<4}  {self.topic}: {self.text}"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cpu_flags(cpuinfo: str | None) -> set[str]:
    for line in (cpuinfo or "").splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def _cgroup_cpus() -> str:
    """The CPU limit of this process's cgroup, in words (v2 ``cpu.max``, else v1 ``cfs_quota_us``)."""
    quota = cpu_quota()
    if quota is None:
        return "no cgroup CPU limit"
    return f"limited to {quota:.2f} CPUs by the cgroup quota ({usable_cpus()} usable)"


def _cgroup_memory() -> str:
    """The memory limit of this process's cgroup, in words (v2 ``memory.max``, else v1)."""
    limit = memory_limit_bytes()
    return f"limited to {limit / 2**30:.1f} GiB" if limit is not None else "no cgroup memory limit"


def check_environment(*, cpuinfo: str | None = None, shm: Path = Path("/dev/shm")) -> Iterator[Finding]:
    """Python, ONNX Runtime (version, providers), the CPU's INT8 flags, cgroup limits and free shared memory.

    ``cpuinfo`` defaults to ``/proc/cpuinfo``'s text; ``shm`` is the shared-memory folder the workers use.
    """
    version = platform.python_version()
    yield Finding("ok" if sys.version_info >= (3, 11) else "FAIL", "python", f"{version} ({sys.executable})")
    try:
        import onnxruntime
    except ImportError as error:
        yield Finding(
            "FAIL", "onnxruntime", f"cannot be imported ({error}); install it: pip install modelport"
        )
    else:
        providers = ", ".join(onnxruntime.get_available_providers())
        yield Finding("ok", "onnxruntime", f"{onnxruntime.__version__}, providers: {providers}")
    flags = _cpu_flags(cpuinfo if cpuinfo is not None else _read("/proc/cpuinfo"))
    present = [flag for flag in _INT8_FLAGS if flag in flags]
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & flags:
        yield Finding("ok", "cpu int8", f"{', '.join(present)}: INT8 models run at full range")
    else:
        yield Finding(
            "note",
            "cpu int8",
            f"{', '.join(present) or 'none of ' + '/'.join(_INT8_FLAGS)}: no VNNI, so U8S8 INT8 models can "
            "saturate here; quantize with reduce_range",
        )
    yield Finding("ok", "cpu", f"{os.cpu_count()} CPUs seen; {_cgroup_cpus()}")
    yield Finding("ok", "memory", _cgroup_memory())
    try:
        free = shutil.disk_usage(shm).free
    except OSError as error:
        yield Finding("FAIL", "shared memory", f"{shm} cannot be read ({error.strerror}); workers need it")
    else:
        level: Level = "ok" if free >= SHM_MINIMUM_BYTES else "FAIL"
        fix = (
            "" if level == "ok" else "; give it more (docker run --shm-size=1g, or a memory-backed emptyDir)"
        )
        yield Finding(level, "shared memory", f"{free / 2**20:.0f} MiB free in {shm}{fix}")


def check_ports(ports: dict[str, tuple[str, int]]) -> Iterator[Finding]:
    """Whether each ``{setting: (host, port)}`` can be bound now (port 0, any free port, always can)."""
    for name, (host, port) in ports.items():
        if port == 0:
            continue
        flag = f"--{name.replace('_', '-')}"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                yield Finding(
                    "FAIL",
                    "port",
                    f"{host}:{port} ({flag}) is not free ({error.strerror}); stop what holds "
                    f"it or choose another with {flag}",
                )
            else:
                yield Finding("ok", "port", f"{host}:{port} ({flag}) is free")


def check_repository(root: Path, settings: ServerSettings) -> Iterator[Finding]:
    """Every model of ``root``: its config.yaml parsed and every served version loaded in an ONNX Runtime
    session and resolved against its graph, as the server does at load time (blocking)."""
    from .repository.folders import Repository
    from .repository.model_manager import _read_version
    from .workers.session import ModelLoadError

    if not root.is_dir():
        yield Finding("FAIL", "repository", f"{root} is not a folder; pass --repository PATH")
        return
    sources = Repository(root).scan()
    if not sources:
        yield Finding("FAIL", "repository", f"{root} holds no model (REPO/MODEL/VERSION/model.onnx)")
    for name, source in sources.items():
        if source.config is None:
            yield Finding("FAIL", f"model {name}", f"{source.config_error}")
            continue
        versions = source.served_versions()
        if not versions:
            yield Finding(
                "FAIL", f"model {name}", f"no version to serve in {source.directory} (1/model.onnx)"
            )
        for version in versions:
            path = source.versions[version].path
            try:
                _, resolved = _read_version(
                    source,
                    path,
                    default_max_batch_size=settings.default_max_batch_size,
                    allow_custom_ops=settings.allow_custom_ops,
                )
            except (ModelLoadError, ValueError) as error:  # ModelConfigError is a ValueError
                yield Finding("FAIL", f"model {name}", f"version {version}: {error}")
            else:
                batching = "dynamic batching" if resolved.dynamic_batching else "no dynamic batching"
                yield Finding(
                    "ok",
                    f"model {name}",
                    f"version {version} loads (max_batch_size {resolved.max_batch_size}, {batching})",
                )


def _declared(name: str) -> click.Option:
    """The option of setting ``name`` as ``serve`` has it: its flag, its ``MODELPORT_*`` variable, default."""
    declared = next(item for item in SETTINGS if item.name == name)
    kind = click.Path(path_type=Path) if declared.kind is Path else declared.kind
    return click.Option(
        [declared.flag, name], type=kind, default=declared.default, envvar=declared.env, show_envvar=True
    )


_PORTS = ("http_port", "grpc_port", "metrics_port", "management_port")


def _run(**options: object) -> None:
    from .setting_fields import SettingError

    try:
        settings = ServerSettings(**options)  # type: ignore[arg-type]
    except SettingError as error:
        raise click.UsageError(str(error)) from None
    hosts = {
        "metrics_port": settings.metrics_host or settings.host,
        "management_port": settings.management_host,
    }
    ports = {name: (hosts.get(name, settings.host), int(getattr(settings, name))) for name in _PORTS}
    findings = [
        *check_environment(),
        *check_ports(ports),
        *check_repository(settings.repository, settings),
    ]
    for finding in findings:
        click.echo(finding.render())
    failed = sum(finding.level == "FAIL" for finding in findings)
    if failed:
        click.echo(f"{failed} problem(s) to fix before 'modelport serve'.")
        sys.exit(1)
    click.echo("Ready to serve: modelport serve" + f" --repository {settings.repository}")


doctor = click.Command(
    "doctor",
    callback=_run,
    params=[_declared(name) for name in ("repository", "host", "metrics_host", "management_host", *_PORTS)],
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
    help="Check the environment (Python, ONNX Runtime, CPU INT8 flags, cgroup limits, /dev/shm, ports) and "
    "every model of the repository (configs parse, each served version loads); exit 1 on a problem.",
)
