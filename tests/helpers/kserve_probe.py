"""Run by KServe's own Python SDK, in its own virtual environment (see ``tests/helpers/kserve_sdk.py``).

``python kserve_probe.py BASE_URL MODEL`` asks the server what KServe's ``InferenceRESTClient`` (protocol v2)
can ask: server liveness and readiness, the model's readiness, and one inference of the ``simple`` model
(``OUTPUT0 = INPUT0 + INPUT1``, FP32 ``[-1, 3]``); it prints the answers as one JSON object. It imports
nothing from this repository: the SDK's environment has none of it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig  # type: ignore[import-not-found]


async def probe(base_url: str, model: str) -> dict[str, Any]:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    try:
        left = np.arange(6, dtype=np.float32).reshape(2, 3)
        right = np.ones((2, 3), dtype=np.float32)
        inputs = []
        for name, array in (("INPUT0", left), ("INPUT1", right)):
            tensor = InferInput(name, list(array.shape), "FP32")
            tensor.set_data_from_numpy(array, binary_data=False)
            inputs.append(tensor)
        response = await client.infer(base_url, InferRequest(model, inputs, request_id="kserve-1"), model)
        outputs = {output.name: output.as_numpy().tolist() for output in response.outputs}
        return {
            "live": await client.is_server_live(base_url),
            "ready": await client.is_server_ready(base_url),
            "model_ready": await client.is_model_ready(base_url, model),
            "outputs": outputs,
            "expected_output0": (left + right).tolist(),
        }
    finally:
        await client.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(sys.argv[1], sys.argv[2]))))
