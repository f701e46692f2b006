"""The repository layout, config.yaml validation and its merge with the graph (no server needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from modelport.server.inference import TensorSpec
from modelport.server.model_config import (
    ModelConfig,
    ModelConfigError,
    ResolvedConfig,
    VersionPolicy,
    load_model_config,
    parse_model_config,
    resolve_config,
)
from modelport.server.repository import folders
from modelport.server.repository.folders import Repository

from tests.helpers.onnx_models import identity_model, write_config, write_model

_GRAPH_IN = (TensorSpec("x", "FP32", (-1, 12)),)
_GRAPH_OUT = (TensorSpec("y", "FP32", (-1, 10)),)


def _resolve(data: dict[str, object], graph_in: tuple[TensorSpec, ...] = _GRAPH_IN) -> ResolvedConfig:
    config = parse_model_config(data, source="m/config.yaml")
    return resolve_config(
        "m", config, graph_in, _GRAPH_OUT, source="m/config.yaml", default_max_batch_size=64
    )


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"max_batch_sise": 4}, "m/config.yaml: max_batch_sise: unknown key"),
        ({"max_batch_size": -1}, "max_batch_size: -1 is out of range; allowed: 0..65536"),
        ({"inputs": [{"name": "x", "datatype": "FLOAT"}]}, "inputs[0].datatype: 'FLOAT' is not one of"),
        ({"inputs": [{"name": "x", "dims": [0]}]}, "inputs[0].dims: [0]: every dimension"),
        ({"inputs": [{"name": "x"}, {"name": "x"}]}, "inputs: tensor names must be unique (repeated: x)"),
        ({"version_policy": {"latest": 1, "all": True}}, "version_policy: give one of latest, all, specific"),
        (
            {"version_policy": {"latest": 0}},
            "version_policy.latest: 0 is out of range; allowed: 1..9223372036854775807",
        ),
        ({"execution_providers": ["gpu"]}, "execution_providers[0]: Input should be"),
        ({"session": {"graph_optimization_level": "max"}}, "session.graph_optimization_level"),
        ({"session": {"intra_op_threads": -1}}, "session.intra_op_threads"),
        ({"dynamic_batching": {"preferred_batch_sizes": [0]}}, "dynamic_batching.preferred_batch_sizes"),
        ({"workers": {"min": 3, "max": 2}}, "workers: max (2) must be >= min (3)"),
        (
            {"workers": {"target_queue_delay_us": 0}},
            "workers.target_queue_delay_us: 0 is out of range; allowed: 1..60000000",
        ),
        (
            {"workers": {"scale_down_idle_s": -1}},
            "workers.scale_down_idle_s: -1 is out of range; allowed: 0..86400",
        ),
        ({"workers": {"scale_down_idle": 5}}, "workers.scale_down_idle: unknown key"),
    ],
)
def test_config_errors_name_file_and_key(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ModelConfigError) as raised:
        parse_model_config(data, source="m/config.yaml")
    assert str(raised.value).startswith("m/config.yaml: ")
    assert fragment in str(raised.value)


def test_config_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("max_batch_size: [unclosed\n")
    with pytest.raises(ModelConfigError, match=r"config\.yaml: not valid YAML"):
        load_model_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ModelConfigError, match="expected a mapping"):
        load_model_config(path)
    assert load_model_config(tmp_path / "absent.yaml") == parse_model_config({}, source="-")


def test_graph_decides_batching() -> None:
    resolved = _resolve({})
    assert resolved.max_batch_size == 64
    fixed = _resolve({}, (TensorSpec("x", "FP32", (3, 12)),))
    assert fixed.max_batch_size == 0


def test_config_dims_exclude_the_batch_dimension() -> None:
    resolved = _resolve({"max_batch_size": 8, "inputs": [{"name": "x", "dims": [12]}]})
    assert resolved.inputs == (TensorSpec("x", "FP32", (-1, 12)),)
    with pytest.raises(ModelConfigError, match=r"inputs\[0\]\.dims: \[-1, 12\] has 2 dimensions"):
        _resolve({"max_batch_size": 8, "inputs": [{"name": "x", "dims": [-1, 12]}]})


def test_config_conflicts_with_graph() -> None:
    with pytest.raises(ModelConfigError, match=r"inputs\[0\]\.name: the graph has no input 'z'"):
        _resolve({"inputs": [{"name": "z"}]})
    with pytest.raises(
        ModelConfigError, match=r"inputs\[0\]\.datatype: INT8 does not match the graph's FP32"
    ):
        _resolve({"inputs": [{"name": "x", "datatype": "INT8"}]})
    with pytest.raises(ModelConfigError, match=r"conflicts with the graph's \[12\]"):
        _resolve({"inputs": [{"name": "x", "dims": [13]}]})
    with pytest.raises(
        ModelConfigError, match="needs the first dimension of every input and output to be dynamic"
    ):
        _resolve({"max_batch_size": 4}, (TensorSpec("x", "FP32", (3, 12)),))


def test_labels_are_read_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("zero\none\n\n")
    config = parse_model_config({"outputs": [{"name": "y", "labels": "labels.txt"}]}, source="x")
    source = str(tmp_path / "config.yaml")
    resolved = resolve_config("m", config, _GRAPH_IN, _GRAPH_OUT, source=source, default_max_batch_size=4)
    assert resolved.labels == {"y": ("zero", "one")}
    missing = parse_model_config({"outputs": [{"name": "y", "labels": "nope.txt"}]}, source="x")
    with pytest.raises(ModelConfigError, match=r"outputs\[0\]\.labels: 'nope.txt' does not exist"):
        resolve_config("m", missing, _GRAPH_IN, _GRAPH_OUT, source=source, default_max_batch_size=4)


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        ({}, [12]),
        ({"latest": 2}, [3, 12]),
        ({"all": True}, [1, 2, 3, 12]),
        ({"specific": [2, 7]}, [2]),
    ],
)
def test_version_policies(policy: dict[str, object], served: list[int]) -> None:
    assert VersionPolicy.model_validate(policy).select([3, 1, 12, 2]) == served


def test_repository_scan_follows_tritons_layout(tmp_path: Path) -> None:
    for version in ("1", "2", "10"):
        write_model(tmp_path, "m", identity_model(), version=version)
    for ignored in ("0", "01", "v3", "latest", "1" * 19, "9" * 250):  # past int64
        (tmp_path / "m" / ignored).mkdir()
    (tmp_path / "m" / "notes.txt").write_text("not a version")
    (tmp_path / ".hidden").mkdir()
    write_model(tmp_path, "other", identity_model())
    write_config(tmp_path, "other", "bogus: 1\n")
    sources = Repository(tmp_path).scan()
    assert sorted(sources) == ["m", "other"]
    assert sorted(sources["m"].versions) == [1, 2, 10]
    assert sources["m"].served_versions() == [10]
    assert sources["other"].config is None
    assert sources["other"].config_error is not None
    assert "other/config.yaml: bogus: unknown key" in sources["other"].config_error
    assert sources["other"].served_versions() == []


def test_a_rescan_parses_only_the_configs_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c"):
        write_model(tmp_path, name, identity_model())
        write_config(tmp_path, name, "max_batch_size: 4\n")
    parsed: list[str] = []

    def counting_load(path: Path) -> ModelConfig:
        parsed.append(path.parent.name)
        return load_model_config(path)

    monkeypatch.setattr(folders, "load_model_config", counting_load)
    scanner = Repository(tmp_path)
    assert [s.config.max_batch_size for s in scanner.scan().values() if s.config] == [4, 4, 4]
    assert parsed == ["a", "b", "c"]
    scanner.scan()
    assert parsed == ["a", "b", "c"], "an unchanged config.yaml was parsed again"

    write_config(tmp_path, "b", "max_batch_size: 16\n")  # new content
    (tmp_path / "c" / "config.yaml").chmod(0o600)  # same content and mtime; a permission fix looks like this
    sources = scanner.scan()
    assert parsed[3:] == ["b", "c"]
    assert sources["a"].config is not None and sources["a"].config.max_batch_size == 4
    assert sources["b"].config is not None and sources["b"].config.max_batch_size == 16

    (tmp_path / "a" / "config.yaml").unlink()  # gone: the all-default config, and nothing cached for it
    assert scanner.scan()["a"].config == ModelConfig()
    assert parsed[5:] == ["a"]

    shutil.rmtree(tmp_path / "b")  # a model directory that went takes its cached parse along
    scanner.scan()
    assert {path.parent.name for path in scanner._configs} == {"c"}  # a has no file, b no directory


def test_preferred_batch_sizes_stay_within_max_batch_size() -> None:
    data = {"max_batch_size": 8, "dynamic_batching": {"preferred_batch_sizes": [4, 16]}}
    with pytest.raises(ModelConfigError, match=r"preferred_batch_sizes: \[16\] exceed max_batch_size \(8\)"):
        _resolve(data)
    assert _resolve({**data, "dynamic_batching": {"preferred_batch_sizes": [4, 8]}}).max_batch_size == 8
