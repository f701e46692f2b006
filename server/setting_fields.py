"""How one setting is declared: :func:`setting` on a dataclass field, read back as a :class:`Setting`.

A field declared ``http_port: int = setting(8000, "REST port.", minimum=0, maximum=65535)`` is, from that one
line, the ``--http-port`` option of ``modelport serve``, the ``MODELPORT_HTTP_PORT`` variable, the
``http_port`` key of ``--config FILE``, the range check, and a row of ``docs/settings.md``. The field's type
says how a value is parsed: ``int``, ``float``, ``str``, ``bool``, ``Path``, a ``Literal`` of strings (the
choices), ``X | None`` (unset by default) or ``tuple[X, ...]`` (a repeatable option).

This module imports nothing heavy: ``modelport serve`` reads it before it knows the options are valid.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = ["Setting", "SettingError", "check_all", "port", "setting", "settings_of"]

T = TypeVar("T")
_KEY = "modelport.setting"
_KINDS: tuple[type, ...] = (bool, int, float, str, Path)


class SettingError(ValueError):
    """A value outside what its setting allows; ``setting`` is the field's name, the message says why."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True, slots=True)
class _Declared:
    help: str
    minimum: float | None
    maximum: float | None
    above: float | None
    noun: str | None
    flag: str | None
    path: Literal["dir", "file"] | None


def setting(
    default: T,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    noun: str | None = None,
    flag: str | None = None,
    path: Literal["dir", "file"] | None = None,
) -> T:
    """A dataclass field that is a server setting.

    ``help`` is one sentence for ``--help`` and the docs. ``minimum``/``maximum`` are inclusive bounds,
    ``above`` an exclusive lower bound. ``noun`` names what a valid value is in the error ("a port number").
    ``flag`` overrides the option (default: ``--`` + the name with dashes). ``path`` (for a ``Path``): the
    option refuses an existing path of the other kind ("dir": a file; "file": a directory).
    """
    declared = _Declared(help, minimum, maximum, above, noun, flag, path)
    field: T = dataclasses.field(default=default, metadata={_KEY: declared})
    return field


def port(default: int, help: str) -> int:
    """A port setting: 0..65535, where 0 binds any free port."""
    return setting(default, help, minimum=0, maximum=65535, noun="a port number")


@dataclass(frozen=True, slots=True)
class Setting:
    """One declared setting, with everything the CLI, the config file and the docs need to know of it."""

    name: str
    help: str
    default: Any
    kind: type  # bool, int, float, str or Path: what one value is parsed as
    optional: bool  # None is allowed (and the default)
    repeated: bool  # a tuple of values (a repeatable option)
    choices: tuple[str, ...]  # from a Literal type; empty = any value of ``kind``
    minimum: float | None
    maximum: float | None
    above: float | None
    noun: str | None
    flag: str
    path: Literal["dir", "file"] | None

    @property
    def env(self) -> str:
        """The environment variable: ``MODELPORT_`` + the name in capitals."""
        return f"MODELPORT_{self.name.upper()}"

    def allowed(self) -> str:
        """What values are allowed, in words ("0..65535", "> 0", "none, poll, explicit"); "" = any."""
        if self.choices:
            return ", ".join(self.choices)
        if self.path is not None:
            return {"dir": "a directory", "file": "a file"}[self.path]
        low = None if self.minimum is None else _number(self.minimum)
        high = None if self.maximum is None else _number(self.maximum)
        if low is not None and high is not None:
            return f"{low}..{high}"
        parts = [f">= {low}" if low is not None else "", f"<= {high}" if high is not None else ""]
        if self.above is not None:
            parts.append(f"> {_number(self.above)}")
        return ", ".join(part for part in parts if part)

    def check(self, value: Any) -> None:
        """Raise :class:`SettingError` naming this setting and what it allows if ``value`` is not allowed."""
        for item in value if self.repeated else (value,):
            if item is None and self.optional:
                continue
            if self.choices and item not in self.choices:
                raise SettingError(self.name, f"{self.name}: '{item}' is not one of {self.allowed()}")
            if self.kind in (int, float) and not self._in_range(item):
                problem = f"is not {self.noun}" if self.noun else "is out of range"
                raise SettingError(self.name, f"{self.name}: {item} {problem} (allowed: {self.allowed()})")

    def _in_range(self, value: float) -> bool:
        return (
            (self.minimum is None or value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
            and (self.above is None or value > self.above)
        )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _parse_type(name: str, hint: Any) -> tuple[type, bool, bool, tuple[str, ...]]:
    """(kind, optional, repeated, choices) of a field's type; TypeError for a type no option can parse."""
    optional = repeated = False
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [arg for arg in args if arg is not type(None)]
        optional, hint = True, rest[0] if len(rest) == 1 else hint
    if typing.get_origin(hint) is tuple and len(args := typing.get_args(hint)) == 2 and args[1] is ...:
        repeated, hint = True, args[0]
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if all(isinstance(choice, str) for choice in choices):
            return str, optional, repeated, choices
    if hint in _KINDS:
        return hint, optional, repeated, ()
    raise TypeError(f"setting {name}: type {hint!r} cannot be read from a command line or a config file")


def settings_of(cls: type) -> tuple[Setting, ...]:
    """Every field of the dataclass ``cls`` declared with :func:`setting`, in declaration order."""
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        declared = field.metadata.get(_KEY)
        if not isinstance(declared, _Declared):
            continue
        kind, optional, repeated, choices = _parse_type(field.name, hints[field.name])
        found.append(
            Setting(
                name=field.name,
                help=declared.help,
                default=field.default,
                kind=kind,
                optional=optional,
                repeated=repeated,
                choices=choices,
                minimum=declared.minimum,
                maximum=declared.maximum,
                above=declared.above,
                noun=declared.noun,
                flag=declared.flag or "--" + field.name.replace("_", "-"),
                path=declared.path,
            )
        )
    return tuple(found)


def check_all(instance: object, settings: tuple[Setting, ...]) -> None:
    """Check every setting's value on ``instance``; the first one not allowed raises :class:`SettingError`."""
    for declared in settings:
        declared.check(getattr(instance, declared.name))
