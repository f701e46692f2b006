"""Settings are declared once: each field of ``ServerSettings`` is an option, a variable, a config key, a
range check and a row of ``docs/settings.md``, and every one of those is derived, not repeated.

The command is driven through click's test runner (the real ``modelport serve`` command, in process); every
case here is refused before the server would start.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest
from click.testing import CliRunner
from modelport.server import settings_doc
from modelport.server.serve_cli import serve
from modelport.server.setting_fields import Setting, SettingError, port, setting, settings_of
from modelport.server.settings import CONFIG_VARIABLE, SETTINGS, ServerSettings

NUMERIC = [declared for declared in SETTINGS if declared.kind in (int, float) and declared.allowed()]
CHOICES = [declared for declared in SETTINGS if declared.choices]


def _refused(args: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(serve, args, env=env)
    assert result.exit_code == 2, result.output
    return result.output


def _too_low(declared: Setting) -> str:
    """A value just below the setting's lower bound, as typed on a command line."""
    bound = declared.minimum if declared.minimum is not None else declared.above
    assert bound is not None
    low = bound - 1 if declared.minimum is not None else bound
    return str(int(low)) if declared.kind is int else str(float(low))


def test_docs_settings_md_is_generated_from_the_current_settings() -> None:
    assert settings_doc.check(), "docs/settings.md is stale: python -m modelport.server.settings_doc --write"
    assert settings_doc.main(["--check"]) == 0


def test_a_stale_table_is_found_and_rewritten(tmp_path: Path) -> None:
    page = tmp_path / "settings.md"
    page.write_text(f"intro\n{settings_doc.BEGIN}\n| old | row |\n{settings_doc.END}\noutro\n")
    assert not settings_doc.check(page)
    settings_doc.write(page)
    assert settings_doc.check(page)
    text = page.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n")
    for declared in SETTINGS:
        assert f"| `{declared.name}` | `{declared.flag}`" in text
    with pytest.raises(ValueError, match="markers"):
        settings_doc.rewrite("no markers here")


def test_every_field_is_a_declared_setting_and_an_option_with_its_variable() -> None:
    fields = [field.name for field in dataclasses.fields(ServerSettings)]
    assert [declared.name for declared in SETTINGS] == fields, "declare every field with setting()"
    options = {param.name: param for param in serve.params}
    assert options.pop("config").envvar == CONFIG_VARIABLE
    assert sorted(options) == sorted(fields)
    for declared in SETTINGS:
        option = options[declared.name]
        assert option.envvar == declared.env == f"MODELPORT_{declared.name.upper()}"
        assert declared.flag in option.opts
        assert option.multiple == declared.repeated
        if not declared.repeated:
            assert option.default == declared.default


def test_help_shows_every_variable_and_every_range() -> None:
    result = CliRunner().invoke(serve, ["--help"], terminal_width=400)
    assert result.exit_code == 0
    for declared in SETTINGS:
        assert declared.env in result.output
        if declared.allowed():
            assert (
                declared.allowed().replace(", ", "|") in result.output or declared.allowed() in result.output
            )


@pytest.mark.parametrize("declared", NUMERIC, ids=lambda declared: declared.name)
def test_a_value_out_of_range_is_refused_naming_setting_range_and_source(
    declared: Setting, tmp_path: Path
) -> None:
    name, flag, env, allowed = declared.name, declared.flag, declared.env, declared.allowed()
    low = _too_low(declared)
    assert f"{name}: {low} " in (output := _refused([flag, low]))
    assert f"(allowed: {allowed}) (from {flag})" in output
    assert f"(allowed: {allowed}) (from {env})" in _refused([], env={env: low})
    config = tmp_path / "serve.yaml"
    config.write_text(f"{name}: {low}\n")
    assert f"(allowed: {allowed}) (from {config})" in _refused(["--config", str(config)])


@pytest.mark.parametrize("declared", CHOICES, ids=lambda declared: declared.name)
def test_a_value_not_among_the_choices_is_refused_listing_them(declared: Setting) -> None:
    for output in (_refused([declared.flag, "sometimes"]), _refused([], env={declared.env: "sometimes"})):
        assert "'sometimes' is not one of" in output
        assert all(choice in output for choice in declared.choices)
    with pytest.raises(SettingError, match=f"{declared.name}: 'sometimes' is not one of"):
        ServerSettings(**{declared.name: "sometimes"})  # type: ignore[arg-type]  # a str for each field


def test_choices_are_matched_without_case_and_passed_on_as_declared() -> None:
    option = next(param for param in serve.params if param.name == "log_level")
    assert option.type.convert("WARNING", option, None) == "warning"


def test_constructing_settings_checks_every_declared_range() -> None:
    ServerSettings()  # the defaults are allowed
    with pytest.raises(
        SettingError, match=r"http_port: 70000 is not a port number \(allowed: 0..65535\)"
    ) as info:
        ServerSettings(http_port=70000)
    assert info.value.setting == "http_port"
    with pytest.raises(SettingError, match=r"poll_interval: 0 is out of range \(allowed: > 0\)"):
        ServerSettings(poll_interval=0)
    with pytest.raises(
        SettingError, match=r"management_host: binding the management API to 0\.0\.0\.0 needs"
    ):
        ServerSettings(management_host="0.0.0.0")
    assert ServerSettings(management_host="0.0.0.0", management_token="t").management_token == "t"


def test_a_path_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "models.txt"
    a_file.write_text("")
    assert "is a file" in _refused(["--repository", str(a_file)])
    assert "is a directory" in _refused(["--ready-file", str(tmp_path)])


def test_a_config_value_of_the_wrong_type_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("http-port: eighty\n")
    assert f"{config}: http-port: 'eighty' is not a valid integer" in _refused(["--config", str(config)])
    config.write_text("log_level: loud\n")
    assert f"{config}: log_level: 'loud' is not one of" in _refused(["--config", str(config)])


def test_an_unknown_config_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("http_port: 8000\nhttp_prot: 9000\n")
    output = _refused(["--config", str(config)])
    assert f"{config}: unknown key 'http_prot'" in output
    assert "http_port" in output  # the known keys are listed


def test_a_new_field_of_any_supported_type_is_read_as_declared() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Example:
        count: int = setting(1, "A count.", minimum=1, maximum=9)
        ratio: float = setting(0.5, "A ratio.", above=0)
        name: str | None = setting(None, "A name.")
        where: Path = setting(Path("x"), "A path.", flag="--at", path="dir")
        mode: Literal["a", "b"] = setting("a", "A mode.")
        tags: tuple[str, ...] = setting((), "Tags.")
        verbose: bool = setting(False, "Talk more.")
        listen: int = port(0, "A port.")
        not_a_setting: int = 3

    found = {declared.name: declared for declared in settings_of(Example)}
    assert list(found) == ["count", "ratio", "name", "where", "mode", "tags", "verbose", "listen"]
    assert (found["count"].kind, found["count"].allowed()) == (int, "1..9")
    assert (found["ratio"].kind, found["ratio"].allowed()) == (float, "> 0")
    assert (found["name"].kind, found["name"].optional) == (str, True)
    assert (found["where"].kind, found["where"].flag, found["where"].allowed()) == (
        Path,
        "--at",
        "a directory",
    )
    assert found["mode"].choices == ("a", "b")
    assert (found["tags"].kind, found["tags"].repeated) == (str, True)
    assert found["verbose"].kind is bool
    assert found["listen"].allowed() == "0..65535"
    with pytest.raises(SettingError, match=r"listen: 70000 is not a port number"):
        found["listen"].check(70000)
    found["name"].check(None)


def test_a_type_no_option_can_parse_is_refused_at_declaration() -> None:
    @dataclasses.dataclass(frozen=True)
    class Bad:
        number: complex = setting(0j, "A complex number.")

    with pytest.raises(TypeError, match="setting number: type"):
        settings_of(Bad)
