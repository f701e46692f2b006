"""Model control: poll mode follows the repository under load without a failed request; explicit mode loads
and unloads through the repository API."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.helpers.onnx_models import (
    add_sub_model,
    identity_model,
    write_config,
    write_corrupt_model,
    write_model,
)
from tests.helpers.server_process import start_server
from tests.helpers.waiting import wait_for


class ContinuousLoad(threading.Thread):
    """Infers on one model (no version: the server's choice) in a loop; counts answers per version."""

    def __init__(self, url: str, model: str) -> None:
        super().__init__(daemon=True)
        self._client = httpclient.InferenceServerClient(url, network_timeout=30.0)
        self._model = model
        self._halt = threading.Event()
        self.versions: dict[str, int] = {}
        self.failures: list[str] = []

    def run(self) -> None:
        data = np.arange(8, dtype=np.float32).reshape(2, 4)
        tensor = httpclient.InferInput("INPUT0", [2, 4], "FP32")
        tensor.set_data_from_numpy(data)
        while not self._halt.is_set():
            try:
                result = self._client.infer(self._model, [tensor])
                np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)
                version = result.get_response()["model_version"]
                self.versions[version] = self.versions.get(version, 0) + 1
            except Exception as error:
                self.failures.append(repr(error))
        self._client.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


def _index(client: httpclient.InferenceServerClient) -> dict[tuple[str, str], dict[str, str]]:
    return {(row["name"], row.get("version", "")): row for row in client.get_model_repository_index()}


def test_poll_mode_follows_the_repository_without_failed_requests(tmp_path: Path) -> None:
    write_model(tmp_path, "live", identity_model("FP32", (-1, 4)), version=1)
    write_model(tmp_path, "doomed", identity_model("FP32"))
    with start_server(tmp_path, "--model-control", "poll", "--poll-interval", "0.2") as server:
        client = httpclient.InferenceServerClient(server.http_url)
        load = ContinuousLoad(server.http_url, "live")
        load.start()
        try:
            wait_for(lambda: load.versions.get("1", 0) >= 5, "requests answered by version 1")

            write_model(tmp_path, "live", identity_model("FP32", (-1, 4)), version=2)
            wait_for(lambda: load.versions.get("2", 0) >= 5, "version 2 to take over")
            wait_for(lambda: not client.is_model_ready("live", "1"), "version 1 to be retired (latest 1)")

            write_model(tmp_path, "fresh", add_sub_model("FP32", (-1, 3)))
            wait_for(lambda: client.is_model_ready("fresh"), "a new model to be loaded")
            write_config(tmp_path, "fresh", {"max_batch_size": 2})
            wait_for(lambda: client.get_model_config("fresh")["max_batch_size"] == 2, "a config change")
            write_config(tmp_path, "fresh", "max_batch_size: 4\nbogus: 1\n")
            wait_for(lambda: "bogus: unknown key" in _index(client)[("fresh", "1")]["reason"], "a bad config")
            assert _index(client)[("fresh", "1")]["state"] == "READY"  # the previous config keeps serving
            assert client.get_model_config("fresh")["max_batch_size"] == 2

            write_corrupt_model(tmp_path, "live", version=3)
            wait_for(
                lambda: _index(client).get(("live", "3"), {}).get("state") not in (None, "LOADING"),
                "the corrupt version 3 to be tried",
            )
            row = _index(client)[("live", "3")]
            assert row["state"] == "UNAVAILABLE"
            assert "not a valid ONNX model" in row["reason"]
            served_before = load.versions["2"]
            wait_for(lambda: load.versions["2"] >= served_before + 5, "version 2 to keep serving")
            assert client.is_model_ready("live", "2")

            shutil.rmtree(tmp_path / "doomed")
            wait_for(lambda: not client.is_model_ready("doomed"), "a removed model to be unloaded")
            assert not any(name == "doomed" for name, _ in _index(client))
        finally:
            load.stop()
        assert load.failures == [], load.failures[:3]
        assert set(load.versions) == {"1", "2"}
        assert sum(load.versions.values()) >= 20
        client.close()


def test_explicit_mode_loads_and_unloads(tmp_path: Path) -> None:
    write_model(tmp_path, "first", identity_model("FP32", (-1, 4)))
    write_model(tmp_path, "second", add_sub_model("FP32", (-1, 3)))
    write_corrupt_model(tmp_path, "broken")
    with start_server(tmp_path, "--model-control", "explicit", "--load-model", "first") as server:
        client = httpclient.InferenceServerClient(server.http_url)
        assert client.is_model_ready("first")
        assert not client.is_model_ready("second")
        assert _index(client)[("second", "")] == {
            "name": "second",
            "state": "UNAVAILABLE",
            "reason": "not loaded",
        }

        client.load_model("second")
        assert client.is_model_ready("second")
        inputs = [httpclient.InferInput(name, [1, 3], "FP32") for name in ("INPUT0", "INPUT1")]
        for tensor in inputs:
            tensor.set_data_from_numpy(np.ones((1, 3), dtype=np.float32))
        np.testing.assert_array_equal(client.infer("second", inputs).as_numpy("OUTPUT0"), [[2, 2, 2]])

        client.unload_model("first")
        assert not client.is_model_ready("first")
        tensor = httpclient.InferInput("INPUT0", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
        with pytest.raises(InferenceServerException, match="no ready version") as raised:
            client.infer("first", [tensor])
        assert raised.value.status() == "503"

        # Load with a config override (config.yaml's schema as JSON), then with files sent in the request.
        client.load_model("first", config=json.dumps({"max_batch_size": 2}))
        assert client.get_model_config("first")["max_batch_size"] == 2
        model_bytes = identity_model("INT8", (-1, 2)).SerializeToString()
        client.load_model("uploaded", config="{}", files={"file:1/model.onnx": model_bytes})
        assert client.get_model_metadata("uploaded")["inputs"] == [
            {"name": "INPUT0", "datatype": "INT8", "shape": [-1, 2]}
        ]

        with pytest.raises(InferenceServerException, match="not a valid ONNX model") as raised:
            client.load_model("broken")
        assert raised.value.status() == "400"  # as Triton: a failed load is INVALID_ARG
        with pytest.raises(InferenceServerException, match="no model directory") as raised:
            client.load_model("absent")
        assert raised.value.status() == "400"
        assert client.is_model_ready("second")  # nothing else was disturbed
        client.close()
