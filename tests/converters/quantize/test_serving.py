"""A quantized version added by ``modelport quantize`` is served by ``modelport serve`` next to the FP32 one
(``version_policy: {all: true}``) and answers through tritonclient over HTTP and gRPC."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from click.testing import CliRunner
from modelport.converters.quantize.cli import quantize

from examples import datasets
from tests.helpers.server_process import start_server

MODELS = Path(__file__).resolve().parents[3] / "models"


def test_quantized_version_is_served(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(MODELS / "digits", repository / "digits")
    config_before = (repository / "digits" / "config.yaml").read_bytes()
    (repository / "digits" / "config.yaml").write_bytes(config_before + b"version_policy: {all: true}\n")
    split = datasets.digits()
    calibration = tmp_path / "calibration.npz"
    np.savez(calibration, images=split.train_x[:200])
    result = CliRunner().invoke(
        quantize,
        [
            "--repository",
            str(repository),
            "--name",
            "digits",
            "--mode",
            "static",
            "--per-channel",
            "--calibration",
            str(calibration),
            "--runs",
            "2",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    int8_path = repository / "digits" / "2" / "model.onnx"
    assert json.loads((int8_path.parent / "quantization.json").read_text())["per_channel"] is True

    images = split.validation_x[:16]
    session = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    output_name = session.get_outputs()[0].name
    expected = session.run(None, {"images": images})[0]
    with start_server(repository) as server:
        client = httpclient.InferenceServerClient(server.http_url)
        assert client.is_model_ready("digits", "2") and client.is_model_ready("digits", "1")
        answers = {}
        for version in ("1", "2"):
            tensor = httpclient.InferInput("images", list(images.shape), "FP32")
            tensor.set_data_from_numpy(images, binary_data=True)
            response = client.infer("digits", [tensor], model_version=version)
            answers[version] = response.as_numpy(output_name)
        client.close()
        grpc_client = grpcclient.InferenceServerClient(server.grpc_url)
        grpc_input = grpcclient.InferInput("images", list(images.shape), "FP32")
        grpc_input.set_data_from_numpy(images)
        over_grpc = grpc_client.infer("digits", [grpc_input], model_version="2").as_numpy(output_name)
        grpc_client.close()
    np.testing.assert_allclose(over_grpc, expected, atol=1e-6)
    np.testing.assert_allclose(answers["2"], expected, atol=1e-6)  # the served INT8 model is the file's
    assert np.mean(answers["2"].argmax(1) == answers["1"].argmax(1)) >= 15 / 16
    assert not np.array_equal(answers["2"], answers["1"])  # and really a different (quantized) model
