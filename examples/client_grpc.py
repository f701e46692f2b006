"""Read handwritten digits with the served ``digits`` CNN over gRPC with ``tritonclient``.

Start the server first (``make serve`` serves ``models/``, gRPC on :8001), then::

    python -m examples.client_grpc [--count 8] [--model mlp]

It sends held-out images of scikit-learn's digits (the recipe's own split, shipped as
``examples/digits_sample.npz``, so scikit-learn is not needed) in one batch, and prints what
the model read against the truth. ``--model mlp`` asks the 64-feature MLP instead (the images flattened).
"""

from __future__ import annotations

import argparse

import numpy as np
import numpy.typing as npt
import tritonclient.grpc as grpcclient

from examples import datasets

__all__ = ["read_digits"]


def read_digits(url: str, images: npt.NDArray[np.float32], *, model: str = "digits") -> list[int]:
    """The digit each ``[N, 1, 8, 8]`` image shows, from one request to ``url`` (host:port).

    The input's name and per-row shape come from the server's model metadata, so the same call works for
    ``digits`` (``images`` ``[1, 8, 8]``) and ``mlp`` (``features`` ``[64]``).
    """
    with grpcclient.InferenceServerClient(url) as client:
        metadata = client.get_model_metadata(model, as_json=True)
        (tensor,) = metadata["inputs"]
        row_shape = [int(dim) for dim in tensor["shape"][1:]]
        batch = images.reshape(len(images), *row_shape)
        request = grpcclient.InferInput(tensor["name"], list(batch.shape), tensor["datatype"])
        request.set_data_from_numpy(batch)
        result = client.infer(model, [request], outputs=[grpcclient.InferRequestedOutput("probabilities")])
    return [int(digit) for digit in np.asarray(result.as_numpy("probabilities")).argmax(axis=1)]


def main() -> None:
    """Print the model's reading of ``--count`` held-out digits next to their true labels."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="127.0.0.1:8001", help="the server's gRPC host:port")
    parser.add_argument("--model", default="digits", choices=["digits", "mlp"])
    parser.add_argument("--count", type=int, default=8, help="how many digits to send (1 to 100)")
    arguments = parser.parse_args()
    if not 1 <= arguments.count <= 100:
        parser.error(f"--count {arguments.count}: the sample holds 100 digits (1 to 100)")
    images, truth = datasets.digits_sample()
    images, truth = images[: arguments.count], truth[: arguments.count]
    read = read_digits(arguments.url, images, model=arguments.model)
    print("read: ", " ".join(str(digit) for digit in read))
    print("truth:", " ".join(str(digit) for digit in truth))
    print(f"{sum(int(a == b) for a, b in zip(read, truth, strict=True))}/{len(read)} correct")


if __name__ == "__main__":
    main()
