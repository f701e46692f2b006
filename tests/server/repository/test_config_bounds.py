"""Config bounds and untrusted config files, through the real server: every refusal names the file (or the
request), the key and what is allowed; it costs only the model it belongs to, never start-up, the poll of
the other models, or the models already serving."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from modelport.server.config_files import UnreadableFile, load_yaml, read_text
from modelport.server.config_limits import MAX_QUEUE_DELAY_US, max_workers
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import identity_model, write_config, write_corrupt_model, write_model
from tests.helpers.server_process import ServerProcess, start_server
from tests.helpers.waiting import wait_for

LABELLED = {"outputs": [{"name": "OUTPUT0", "labels": "labels.txt"}]}
DEEP_YAML = "- " * 3000 + "x\n"  # 3000 nested block sequences


def _index(client: httpclient.InferenceServerClient) -> dict[str, dict[str, str]]:
    """The repository index by model name (the model row, or its version 1 row)."""
    rows: dict[str, dict[str, str]] = {}
    for row in client.get_model_repository_index():
        rows.setdefault(row["name"], row)
    return rows


def _infer(client: httpclient.InferenceServerClient, model: str) -> None:
    data = np.arange(4, dtype=np.float32).reshape(1, 4)
    tensor = httpclient.InferInput("INPUT0", [1, 4], "FP32")
    tensor.set_data_from_numpy(data)
    result = client.infer(model, [tensor]).as_numpy("OUTPUT0")
    assert result is not None
    np.testing.assert_array_equal(result, data)


def _bad_repository(root: Path) -> dict[str, str]:
    """A repository of one good model and one model per defect; the fragment each one's reason must hold."""
    write_model(root, "good", identity_model(), config=LABELLED)
    (root / "good" / "labels.txt").write_text("zero\none\ntwo\nthree\n")
    expected: dict[str, str] = {}

    def bad(name: str, config: dict[str, Any] | str | None, fragment: str) -> Path:
        write_model(root, name, identity_model())
        if config is not None:
            write_config(root, name, config)
        expected[name] = fragment
        return root / name

    os.mkfifo(bad("fifo_config", None, "config.yaml: is not a regular file (it is a FIFO)") / "config.yaml")
    bad("binary_config", "max_batch_size: 4\n", "config.yaml: is not UTF-8 text (byte 5 is 0xff)")
    (root / "binary_config" / "config.yaml").write_bytes(b"max_b\xff\xfe: 4\n")
    bad("deep_config", DEEP_YAML, "config.yaml: nests deeper than 32 levels")
    bad(
        "huge_batch",
        {"max_batch_size": 10**30},
        "max_batch_size: 10" + "0" * 29 + " is out of range; allowed",
    )
    bad(
        "huge_dims",
        {"inputs": [{"name": "INPUT0", "dims": [10**30]}]},
        "inputs[0].dims: [" + "1" + "0" * 30 + "]: every dimension must be -1 (dynamic) or a size in 1..",
    )
    bad(
        "endless_delay",
        {"dynamic_batching": {"max_queue_delay_us": 10**12}},
        f"max_queue_delay_us: 1000000000000 is out of range; allowed: 0..{MAX_QUEUE_DELAY_US} (10 s)",
    )
    bad(
        "many_workers",
        {"workers": {"min": 16}},
        f"workers.min: 16 is out of range; allowed: 1..{max_workers()}",
    )
    os.mkfifo(
        bad("fifo_labels", LABELLED, "outputs[0].labels: 'labels.txt' is not a regular file") / "labels.txt"
    )
    os.symlink(
        "/dev/zero",
        bad("zero_labels", LABELLED, "'labels.txt' leads outside the model's folder") / "labels.txt",
    )
    fifo_model = bad("fifo_model", None, "model.onnx: is not a regular file (it is a FIFO)") / "1/model.onnx"
    fifo_model.unlink()
    os.mkfifo(fifo_model)
    absolute = {"outputs": [{"name": "OUTPUT0", "labels": "/dev/zero"}]}
    bad("absolute_labels", absolute, "outputs[0].labels: '/dev/zero': an absolute path")
    climbing = {"outputs": [{"name": "OUTPUT0", "labels": "../good/labels.txt"}]}
    bad("climbing_labels", climbing, "outputs[0].labels: '../good/labels.txt': '..' is not allowed")
    return expected


def test_bad_config_files_cost_only_their_own_model(tmp_path: Path) -> None:
    expected = _bad_repository(tmp_path)
    started = time.monotonic()
    with start_server(tmp_path, "--model-control", "poll", "--poll-interval", "0.2") as server:
        startup_s = time.monotonic() - started
        client = httpclient.InferenceServerClient(server.http_url)
        index = _index(client)
        for name, fragment in expected.items():
            assert index[name]["state"] == "UNAVAILABLE", (name, index[name])
            assert fragment in index[name]["reason"], (name, index[name]["reason"])
            assert f"{name}/" in index[name]["reason"], (name, index[name]["reason"])  # names the file
        # The good model serves, its labels read, its /config writable as JSON.
        _infer(client, "good")
        assert client.get_model_config("good")["output"][0]["label_filename"] == "labels.txt"
        assert startup_s < 30, f"start-up took {startup_s:.1f} s"

        # Polling goes on for every model: a new one loads, a fixed one loads, a good one changed reloads.
        write_model(tmp_path, "later", identity_model())
        (tmp_path / "fifo_config" / "config.yaml").unlink()
        write_config(tmp_path, "fifo_config", {"max_batch_size": 2})
        write_config(tmp_path, "endless_delay", {"dynamic_batching": {"max_queue_delay_us": 1000}})
        wait_for(lambda: client.is_model_ready("later"), "a model added after start-up to load")
        wait_for(lambda: client.is_model_ready("fifo_config"), "the fixed FIFO config to load")
        wait_for(lambda: client.is_model_ready("endless_delay"), "the fixed queue delay to load")
        _infer(client, "endless_delay")
        assert client.get_model_config("fifo_config")["max_batch_size"] == 2
        # A bad config written over a good one leaves the good one serving, and the poll still running.
        (tmp_path / "good" / "config.yaml").write_bytes(b"\xff" * 10)
        wait_for(lambda: "not UTF-8" in _index(client)["good"]["reason"], "the broken config to be seen")
        _infer(client, "good")
        write_model(tmp_path, "latest", identity_model())
        wait_for(lambda: client.is_model_ready("latest"), "polling to go on after the broken config")
        assert server.process.poll() is None
        client.close()


def _explicit_repository(root: Path) -> None:
    write_model(root, "good", identity_model())
    write_model(root, "reloadable", identity_model())
    write_model(root, "other", identity_model())


def _worker_count(server: ServerProcess) -> int:
    return len(psutil.Process(server.process.pid).children(recursive=True))


def test_load_parameters_triton_config_and_scaling_share_the_bounds(tmp_path: Path) -> None:
    _explicit_repository(tmp_path)
    with start_server(tmp_path, "--model-control", "explicit", "--load-model", "*") as server:
        client = httpclient.InferenceServerClient(server.http_url)
        # config.yaml's schema as the load request's config JSON.
        with pytest.raises(InferenceServerException) as raised:
            client.load_model("other", config=json.dumps({"max_batch_size": 10**30}))
        assert raised.value.status() == "400"
        assert "parameters.config: max_batch_size: 10" in raised.value.message()
        assert "is out of range; allowed: 0..65536" in raised.value.message()
        # Triton's ModelConfig JSON: the same check, after the translation.
        triton = {"dynamic_batching": {"max_queue_delay_microseconds": str(10**12)}}
        with pytest.raises(InferenceServerException) as raised:
            client.load_model("other", config=json.dumps(triton))
        assert raised.value.status() == "400"
        assert "Triton ModelConfig" in raised.value.message()
        named = "dynamic_batching.max_queue_delay_microseconds: 1000000000000 is out of range"
        assert f"{named}; allowed: 0..10000000" in raised.value.message()
        instances = {"instance_group": [{"count": 16, "kind": "KIND_CPU"}]}
        summed = r"instance_group.count \(summed over the groups\): 16 is out of range"
        with pytest.raises(InferenceServerException, match=summed):
            client.load_model("other", config=json.dumps(instances))
        # Nothing was disturbed: the model still serves, /config still answers.
        _infer(client, "other")
        assert client.get_model_config("other")["max_batch_size"] == 64

        # The management API's scaling: the same ranges, with its own parameter names; no process forked.
        before = _worker_count(server)
        management = f"http://{server.management_url}"
        response = httpx.put(f"{management}/models/good", params={"min_worker": 16, "synchronous": "true"})
        assert response.status_code == 400
        message = response.json()["message"]
        assert f"min_worker: 16 is out of range; allowed: 1..{max_workers()}" in message, message
        response = httpx.put(f"{management}/models/good", params={"min_worker": 2, "max_worker": 1})
        assert response.status_code == 400
        assert "max_worker (1) must be >= min_worker (2)" in response.json()["message"]
        response = httpx.post(f"{management}/models", params={"url": "other", "initial_workers": 99})
        assert response.status_code == 400
        assert "initial_workers: 99 is out of range" in response.json()["message"]
        assert _worker_count(server) == before
        assert len(httpx.get(f"{management}/models/good").json()[0]["workers"]) == 1
        _infer(client, "good")
        client.close()


def test_a_failed_reload_is_an_error_and_the_old_version_serves_on(tmp_path: Path) -> None:
    _explicit_repository(tmp_path)
    with start_server(tmp_path, "--model-control", "explicit", "--load-model", "*") as server:
        client = httpclient.InferenceServerClient(server.http_url)
        grpc_client = grpcclient.InferenceServerClient(server.grpc_url)
        write_corrupt_model(tmp_path, "reloadable", version=2)  # the latest version: the one to load
        with pytest.raises(InferenceServerException) as raised:
            client.load_model("reloadable")
        assert raised.value.status() == "400"
        assert "failed to load 'reloadable' (still serving version 1)" in raised.value.message()
        assert "version 2: " in raised.value.message()
        with pytest.raises(InferenceServerException) as raised:
            grpc_client.load_model("reloadable")
        assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "still serving version 1" in raised.value.message()
        _infer(client, "reloadable")  # version 1 serves on
        # A reload whose config.yaml is refused is an error too; the serving version stays.
        write_config(tmp_path, "reloadable", "max_batch_size: 4\nworkers: {threads: 1000000}\n")
        with pytest.raises(InferenceServerException, match=r"workers.threads: 1000000 is out of range"):
            client.load_model("reloadable")
        _infer(client, "reloadable")
        # The same model fixed loads with a plain 200.
        write_model(tmp_path, "reloadable", identity_model(), version=2)
        (tmp_path / "reloadable" / "config.yaml").unlink()
        client.load_model("reloadable")
        assert client.is_model_ready("reloadable", "2")
        grpc_client.close()
        client.close()


def test_reading_untrusted_files(tmp_path: Path) -> None:
    """The reader's refusals, one by one (the server tests above show where they surface)."""
    with pytest.raises(UnreadableFile, match="a character device"):
        read_text(Path("/dev/zero"), limit=1024)
    with pytest.raises(UnreadableFile, match="a directory"):
        read_text(tmp_path, limit=1024)
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 1025)
    with pytest.raises(UnreadableFile, match="1025 bytes, more than the limit of 1024 bytes"):
        read_text(big, limit=1024)
    with pytest.raises(FileNotFoundError):
        read_text(tmp_path / "absent", limit=1024)
    with pytest.raises(UnreadableFile, match="uses the YAML alias"):
        load_yaml("a: &x [1, 2]\nb: *x\n")
    with pytest.raises(UnreadableFile, match="nests deeper than 32 levels"):
        load_yaml(DEEP_YAML)
    assert load_yaml("workers: {min: 2}\n") == {"workers": {"min": 2}}
