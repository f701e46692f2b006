"""A converted model is served as converted: the real server loads the repository the converter wrote
(its config.yaml included) and answers with what the framework computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from modelport.converters import convert

from tests.helpers.server_process import start_server

pytestmark = pytest.mark.slow


def test_converted_keras_and_torch_models_serve(tmp_path: Path) -> None:
    import keras
    import torch

    from tests.converters.factories import keras_mlp
    from tests.converters.torch_models import TORCH_ARCHITECTURES

    repository = tmp_path / "models"
    keras.utils.set_random_seed(3)
    classifier = keras_mlp()
    classifier.save(tmp_path / "classifier.keras")
    convert(tmp_path / "classifier.keras", repository=repository, name="classifier", max_batch_size=8)
    torch.manual_seed(3)
    sequence_model = TORCH_ARCHITECTURES["gru"][0]().eval()
    program = torch.export.export(
        sequence_model, (torch.randn(2, 6, 4),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, str(tmp_path / "gru.pt2"))
    convert(tmp_path / "gru.pt2", repository=repository, name="gru")

    features = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    sequences = np.random.default_rng(2).standard_normal((2, 6, 4)).astype(np.float32)
    with start_server(repository) as server:
        client = httpclient.InferenceServerClient(server.http_url)
        metadata = client.get_model_metadata("classifier")
        assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
            ("features", "FP32", [-1, 4])
        ]
        assert client.get_model_config("classifier")["max_batch_size"] == 8

        request = httpclient.InferInput("features", list(features.shape), "FP32")
        request.set_data_from_numpy(features)
        served = client.infer("classifier", [request]).as_numpy("probabilities")
        np.testing.assert_allclose(served, np.asarray(classifier(features, training=False)), atol=1e-5)

        request = httpclient.InferInput("sequence", list(sequences.shape), "FP32")
        request.set_data_from_numpy(sequences)
        served = client.infer("gru", [request]).as_numpy("output")
        with torch.no_grad():
            expected = sequence_model(torch.from_numpy(sequences)).numpy()
        np.testing.assert_allclose(served, expected, atol=1e-5)
