"""Replay the Dockerfile's build of an image on this machine, without a Docker engine (none runs here).

Every stage the target needs (its ``FROM`` chain, and the stages it mounts or copies ``--from``) is replayed
in order into one scratch folder that stands for the image's filesystem: every absolute path in a ``RUN``
line, in ``ENV`` or a ``COPY`` destination is taken relative to that folder (``/opt/modelport`` becomes
``ROOT/opt/modelport``). ``WORKDIR``, ``ARG``, ``ENV`` and ``COPY`` from the build context are applied, and
``RUN`` lines run through ``/bin/sh -c`` with the stage's environment, so the image's own install commands
are what builds the test's environment and cannot drift from it.

Only ``RUN`` lines made of ``python`` commands are replayed. The others change the system (``apt-get``,
``useradd``) and are never run on a developer's or CI's machine: they are returned as ``skipped`` for the
caller to account for. The base images are stood in for by the Python running the tests.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.image_config import Stage, env_pairs, global_args, read_stages

__all__ = ["BuildFailed", "ReplayedBuild", "map_path", "replay_build"]

# An absolute path: a "/" that starts a word (after whitespace, a quote, "=" or ":" as in PATH lists).
_ABSOLUTE = re.compile(r"""(?:(?<=^)|(?<=[\s"'=:]))/(?=[\w.])""")
_LEADING_FLAGS = re.compile(r"^\s*(?:--\S+\s+)+")
_FROM_FLAG = re.compile(r"(?:^|[\s,])from=([\w.-]+)")


class BuildFailed(AssertionError):
    """A replayed ``RUN`` line exited with an error (its output is in the message)."""


@dataclass
class ReplayedBuild:
    """The scratch filesystem the build produced, and the ``RUN`` lines it did not replay, by stage."""

    root: Path
    env: dict[str, str] = field(
        default_factory=dict
    )  # the last stage's environment (what the image runs with)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    replayed: list[tuple[str, str]] = field(default_factory=list)


def map_path(text: str, root: Path) -> str:
    """*text* with every absolute path moved under *root* (``/dist/x`` -> ``ROOT/dist/x``)."""
    return _ABSOLUTE.sub(lambda _: f"{root}/", text)


def _needed_stages(stages: list[Stage], target: Stage) -> list[Stage]:
    """*target*'s ``FROM`` chain and the stages it mounts or copies from, each after what it needs."""
    by_name = {stage.name: stage for stage in stages}
    ordered: list[Stage] = []

    def visit(stage: Stage) -> None:
        if stage in ordered:
            return
        if stage.base in by_name:
            visit(by_name[stage.base])
        for instruction, value in stage.instructions:
            if instruction in ("RUN", "COPY"):
                for name in _FROM_FLAG.findall(" ".join(re.findall(r"--\S+", value))):
                    visit(by_name[name])
        ordered.append(stage)

    visit(target)
    return ordered


def _python_only(command: str) -> bool:
    """Every command of the shell line (split at ``&&``, ``||``, ``;``, ``|`` outside quotes) runs python."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    starts_command, firsts = True, []
    for token in lexer:
        if token in ("&&", "||", ";", "|"):
            starts_command = True
        elif starts_command:
            firsts.append(token)
            starts_command = False
    return bool(firsts) and all(first in ("python", "python3") for first in firsts)


def _copy_from_context(value: str, context: Path, root: Path, workdir: str) -> None:
    words = shlex.split(value)
    if any(word.startswith("--from=") for word in words):
        return  # every stage shares the one scratch filesystem: what another stage made is already there
    paths = [word for word in words if not word.startswith("--")]
    sources, destination = paths[:-1], paths[-1]
    absolute = destination if destination.startswith("/") else f"{workdir.rstrip('/')}/{destination}"
    target = root / absolute.lstrip("/")
    for source in sources:
        origin = context / source
        if not origin.exists():
            raise BuildFailed(f"COPY {source}: not in the build context {context}")
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif destination.endswith("/") or len(sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def replay_build(
    dockerfile: Path,
    *,
    context: Path,
    root: Path,
    python: Path,
    host_env: dict[str, str],
    build_args: dict[str, str] | None = None,
    timeout: float = 600.0,
) -> ReplayedBuild:
    """Replay the build of the Dockerfile's last stage into *root*; *python* stands in for the base image's.

    *python* is reached through ``ROOT/usr/local/bin/python`` (where the official Python images have it), put
    first on *host_env*'s PATH; the replayed commands start from *host_env*. Raises :class:`BuildFailed` if a
    replayed ``RUN`` fails or a ``COPY`` source is missing from *context*.
    """
    stages = read_stages(dockerfile, build_args)
    arguments = {**global_args(dockerfile), **(build_args or {})}
    build = ReplayedBuild(root=root)
    environments: dict[str, dict[str, str]] = {}
    workdirs: dict[str, str] = {}
    base_bin = root / "usr" / "local" / "bin"
    base_bin.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        # A wrapper, not a symlink: a symlink to a venv's python outside the venv loses the venv.
        (base_bin / name).write_text(f'#!/bin/sh\nexec "{python}" "$@"\n')
        (base_bin / name).chmod(0o755)
    base_path = os.pathsep.join([str(base_bin), host_env.get("PATH", "")])
    for stage in _needed_stages(stages, stages[-1]):
        env = dict(environments.get(stage.base, {**host_env, "PATH": base_path}))
        workdir = workdirs.get(stage.base, "/")
        for instruction, value in stage.instructions:
            if instruction == "ARG":
                # Docker: a build argument wins, then the stage's default, then the global default.
                name, has_default, default = value.strip().partition("=")
                given = (build_args or {}).get(name)
                if given is not None or has_default or name in arguments:
                    env[name] = given if given is not None else default if has_default else arguments[name]
            elif instruction == "ENV":
                # The image's paths are mapped first; what $VARIABLES expand to is this machine's already.
                env.update(env_pairs(map_path(value, root), env))
            elif instruction == "WORKDIR":
                workdir = value.strip() if value.strip().startswith("/") else f"{workdir}/{value.strip()}"
                (root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
            elif instruction == "COPY":
                _copy_from_context(value, context, root, workdir)
            elif instruction == "RUN":
                command = _LEADING_FLAGS.sub("", value)
                if not _python_only(command):
                    build.skipped.append((stage.name, command))
                    continue
                result = subprocess.run(
                    ["/bin/sh", "-c", map_path(command, root)],
                    cwd=root / workdir.lstrip("/"),
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
                if result.returncode != 0:
                    output = f"{result.stdout}\n{result.stderr}"
                    raise BuildFailed(
                        f"stage {stage.name}: RUN {command}\nexit {result.returncode}\n{output}"
                    )
                build.replayed.append((stage.name, command))
        environments[stage.name] = env
        workdirs[stage.name] = workdir
    build.env = env
    return build
