"""Property-based fuzzing of the wire decoders, in process: JSON, Triton's binary extension, gRPC.

10,000 cases per protocol (``RELIABILITY_FUZZ_CASES`` changes it), derandomized so CI runs the same cases
every time. Each case must decode to arrays of the declared shapes or be refused with a client error
(:func:`tests.reliability.wire_fuzz.decoded_or_refused`); never another exception, which the server would
answer with a 500 / INTERNAL. ``benchmarks/fuzz.py`` runs 100,000 per protocol with a random seed.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from modelport.server.inference import InferRequest, TensorSpec
from modelport.server.protocols import grpc_codec, rest_codec
from modelport.server.protocols.generated import grpc_service_pb2 as pb

from tests.reliability.wire_fuzz import (
    MAX_BYTES,
    binary_requests,
    decoded_or_refused,
    grpc_requests,
    json_bodies,
    raw_binary_cases,
)

CASES = int(os.environ.get("RELIABILITY_FUZZ_CASES", "10000"))
_FUZZ = settings(
    max_examples=CASES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    # No shrinking in CI: a failure is reported at once with its case (benchmarks/fuzz.py shrinks).
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


def _json(body: bytes, header_length: int | None = None) -> tuple[InferRequest, rest_codec.OutputFormat]:
    return rest_codec.decode_infer_request(
        body, header_length, model_name="m", model_version="", max_bytes=MAX_BYTES
    )


@pytest.fixture(scope="module")
def verdicts() -> Counter[str]:
    """What the cases of this module came to, so a test can check both outcomes were reached."""
    return Counter()


def test_json_decoder_decodes_or_refuses_every_body(verdicts: Counter[str]) -> None:
    @_FUZZ
    @given(body=json_bodies())
    def run(body: bytes) -> None:
        verdicts["json " + decoded_or_refused(lambda: _json(body))] += 1

    run()
    assert verdicts["json decoded"] > CASES // 20, verdicts  # the accepting path is exercised too


def test_binary_extension_decoder_decodes_or_refuses_every_body(verdicts: Counter[str]) -> None:
    @_FUZZ
    @given(case=binary_requests())
    def run(case: tuple[bytes, int | None]) -> None:
        body, length = case
        verdicts["binary " + decoded_or_refused(lambda: _json(body, length))] += 1

    run()
    assert verdicts["binary decoded"] > CASES // 50, verdicts


def test_raw_binary_decoder_decodes_or_refuses_every_body() -> None:
    @settings(_FUZZ, max_examples=max(1, CASES // 5))
    @given(case=raw_binary_cases())
    def run(case: tuple[bytes, str, tuple[int, ...], bool]) -> None:
        body, datatype, shape, batching = case
        spec = TensorSpec("INPUT0", datatype, shape)
        decoded_or_refused(
            lambda: rest_codec.decode_raw_binary_request(
                body, spec, batching=batching, model_name="m", model_version="", max_bytes=MAX_BYTES
            )
        )

    run()


def test_grpc_decoder_decodes_or_refuses_every_message(verdicts: Counter[str]) -> None:
    @_FUZZ
    @given(message=grpc_requests())
    def run(message: pb.ModelInferRequest) -> None:
        # The bytes the server receives: what the client serialized, parsed again.
        received = pb.ModelInferRequest.FromString(message.SerializeToString())
        verdicts[
            "grpc "
            + decoded_or_refused(lambda: grpc_codec.decode_infer_request(received, max_bytes=MAX_BYTES))
        ] += 1

    run()
    assert verdicts["grpc decoded"] > CASES // 20, verdicts
