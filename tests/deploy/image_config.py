"""What the Dockerfile configures its images with, read from the Dockerfile itself (tests cannot drift).

``dockerfile-parse`` splits the file into instructions (continuations, comments, parser directives); this
module follows Docker's build semantics on top: ``ARG`` defaults before the first ``FROM`` expand in
``FROM``, a stage ``FROM`` another stage inherits its image configuration (ENV, USER, EXPOSE, VOLUME,
ENTRYPOINT, CMD, HEALTHCHECK, STOPSIGNAL, WORKDIR), and a stage that sets ``ENTRYPOINT`` drops the ``CMD``
it inherited. Nothing is executed: ``RUN`` lines are only recorded.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from dockerfile_parse import DockerfileParser

__all__ = ["Copy", "ImageConfig", "Stage", "env_pairs", "global_args", "read_stages", "stage_config"]

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _expand(text: str, variables: dict[str, str]) -> str:
    """``$NAME`` / ``${NAME}`` from *variables*; unknown names expand to the empty string, as Docker does."""
    return _VARIABLE.sub(lambda match: variables.get(match.group(1) or match.group(2), ""), text)


def _exec_form(value: str, instruction: str) -> list[str]:
    """A JSON-array (exec form) argument list; anything else is an error (shell form hides signals)."""
    try:
        words = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"{instruction} {value!r} is not in exec (JSON array) form") from error
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise ValueError(f"{instruction} {value!r} is not a JSON array of strings")
    return list(words)


def env_pairs(value: str, env: dict[str, str]) -> dict[str, str]:
    """``ENV K=V K2=V2`` (values may use earlier variables) or the legacy ``ENV K V``."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return {words[0]: _expand(" ".join(words[1:]), env)}
    pairs: dict[str, str] = {}
    for word in words:
        key, _, raw = word.partition("=")
        pairs[key] = _expand(raw, {**env, **pairs})
    return pairs


@dataclass(frozen=True)
class Copy:
    """One ``COPY``: its sources, its destination and its ``--from`` stage (None: the build context)."""

    sources: tuple[str, ...]
    destination: str
    from_stage: str | None


@dataclass(frozen=True)
class ImageConfig:
    """The configuration an image built up to some stage carries (what ``docker inspect`` would show)."""

    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str = "/"
    exposed_ports: tuple[int, ...] = ()
    volumes: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    healthcheck: tuple[str, ...] = ()
    healthcheck_options: dict[str, str] = field(default_factory=dict)
    stop_signal: str | None = None

    @property
    def command(self) -> list[str]:
        """What the container runs: ENTRYPOINT followed by CMD."""
        return [*self.entrypoint, *self.cmd]


@dataclass
class Stage:
    """One ``FROM`` ... section: its name, its base (a registry image or an earlier stage) and its steps."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    @property
    def copies(self) -> list[Copy]:
        """The stage's ``COPY`` instructions, in order."""
        found: list[Copy] = []
        for instruction, value in self.instructions:
            if instruction != "COPY":
                continue
            words = shlex.split(value)
            flags = [word for word in words if word.startswith("--")]
            paths = [word for word in words if not word.startswith("--")]
            from_stage = next((flag.split("=", 1)[1] for flag in flags if flag.startswith("--from=")), None)
            found.append(Copy(tuple(paths[:-1]), paths[-1], from_stage))
        return found

    @property
    def runs(self) -> list[str]:
        """The stage's ``RUN`` command lines, in order (not executed)."""
        return [value for instruction, value in self.instructions if instruction == "RUN"]


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    parser = DockerfileParser(path=str(dockerfile), env_replace=False)
    return [(item["instruction"].upper(), item["value"]) for item in parser.structure]


def global_args(dockerfile: Path) -> dict[str, str]:
    """The ``ARG`` defaults declared before the first ``FROM`` (a stage's bare ``ARG NAME`` inherits them)."""
    found: dict[str, str] = {}
    for instruction, value in _instructions(dockerfile):
        if instruction == "FROM":
            break
        if instruction == "ARG":
            key, _, default = value.partition("=")
            found[key.strip()] = default.strip()
        elif instruction != "COMMENT":
            raise ValueError(f"{dockerfile}: {instruction} before the first FROM")
    return found


def read_stages(dockerfile: Path, build_args: dict[str, str] | None = None) -> list[Stage]:
    """The Dockerfile's stages in order, with global ``ARG`` defaults (overridden by *build_args*) expanded in
    ``FROM``. Unnamed stages are named by their index, as Docker does."""
    arguments = {**global_args(dockerfile), **(build_args or {})}
    stages: list[Stage] = []
    for instruction, value in _instructions(dockerfile):
        if instruction == "COMMENT":
            continue
        if instruction == "FROM":
            words = value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=_expand(words[0], arguments)))
        elif stages:
            stages[-1].instructions.append((instruction, value))
    if not stages:
        raise ValueError(f"{dockerfile}: no FROM")
    return stages


def _apply(config: ImageConfig, instruction: str, value: str) -> ImageConfig:
    if instruction == "ENV":
        return replace(config, env={**config.env, **env_pairs(value, config.env)})
    if instruction == "USER":
        return replace(config, user=_expand(value.strip(), config.env))
    if instruction == "WORKDIR":
        return replace(
            config, workdir=str(PurePosixPath(config.workdir) / _expand(value.strip(), config.env))
        )
    if instruction == "EXPOSE":
        ports = tuple(int(word.split("/")[0]) for word in value.split())
        return replace(config, exposed_ports=(*config.exposed_ports, *ports))
    if instruction == "VOLUME":
        stripped = value.strip()
        paths = _exec_form(stripped, "VOLUME") if stripped.startswith("[") else stripped.split()
        return replace(config, volumes=(*config.volumes, *paths))
    if instruction == "ENTRYPOINT":
        # Docker: setting ENTRYPOINT resets a CMD inherited from the base image.
        return replace(config, entrypoint=tuple(_exec_form(value, "ENTRYPOINT")), cmd=())
    if instruction == "CMD":
        return replace(config, cmd=tuple(_exec_form(value, "CMD")))
    if instruction == "STOPSIGNAL":
        return replace(config, stop_signal=value.strip())
    if instruction == "HEALTHCHECK":
        options, _, command = value.partition("CMD")
        flags = dict(word.removeprefix("--").split("=", 1) for word in options.split())
        probe = tuple(_exec_form(command.strip(), "HEALTHCHECK CMD"))
        return replace(config, healthcheck=probe, healthcheck_options=flags)
    return config


def stage_config(
    dockerfile: Path, stage: str | None = None, build_args: dict[str, str] | None = None
) -> ImageConfig:
    """The image configuration of *stage* (default: the last stage, what ``docker build`` tags), including
    what it inherits from earlier stages it is built ``FROM``."""
    stages = read_stages(dockerfile, build_args)
    by_name = {item.name: item for item in stages}
    target = by_name[stage] if stage is not None else stages[-1]
    chain = [target]
    while chain[-1].base in by_name:
        chain.append(by_name[chain[-1].base])
    config = ImageConfig()
    for item in reversed(chain):
        for instruction, value in item.instructions:
            config = _apply(config, instruction, value)
    return config
