"""Large JSON tensors parsed and written in pieces (``rest_json_slices``): the same tensors and the same
refusals as parsing the document whole, and no piece holding the GIL for long.

The codec functions are called directly (the body sizes make a server round trip slow on a shared
machine); ``test_decode_limits`` shows the server answering health probes while such a body is decoded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from modelport.server.errors import InvalidInput
from modelport.server.inference import InferResponse
from modelport.server.protocols.large_requests import INLINE_BYTES
from modelport.server.protocols.rest_codec import OutputFormat, decode_infer_request, encode_infer_response

COUNT = INLINE_BYTES // 4  # values of at least 4 bytes of JSON each: every body below is decoded in pieces
_SHAPE = b'"shape":[%d]' % COUNT


def _body(datatype: str, data: Any, shape: list[int] | None = None, **extra: Any) -> bytes:
    size = shape if shape is not None else [len(data)]
    tensor = {"name": "INPUT0", "datatype": datatype, "shape": size, "data": data}
    return orjson.dumps({"inputs": [tensor], **extra}, option=orjson.OPT_SERIALIZE_NUMPY)


def _decode(body: bytes) -> Any:
    request, _ = decode_infer_request(body, None, model_name="m", model_version="", max_bytes=2**31)
    assert len(body) >= INLINE_BYTES
    return request.inputs["INPUT0"]


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("FP32", np.random.default_rng(1).standard_normal(COUNT).astype(np.float32)),
        ("INT64", np.random.default_rng(2).integers(-(2**62), 2**62, COUNT)),
        ("BOOL", np.random.default_rng(3).integers(0, 2, COUNT).astype(bool)),
    ],
    ids=["fp32", "int64", "bool"],
)
def test_a_long_flat_list_decodes_to_the_same_tensor(datatype: str, values: Any) -> None:
    decoded = _decode(_body(datatype, values, shape=[COUNT // 4, 4]))
    assert decoded.shape == (COUNT // 4, 4)
    assert np.array_equal(decoded.reshape(-1), values)


def test_nested_lists_and_strings_are_parsed_whole_as_before() -> None:
    nested = np.arange(COUNT, dtype=np.float32).reshape(-1, 4)
    assert np.array_equal(_decode(_body("FP32", nested.tolist(), shape=list(nested.shape))), nested)
    words = ["word"] * COUNT
    assert _decode(_body("BYTES", words)).tolist() == [b"word"] * len(words)


def test_a_long_list_of_strings_is_cut_only_between_strings() -> None:
    tricky = ['a","b', 'c\\",', 'x"]', "\\", 'q\\"],["', "", "caf\u00e9, ok"]
    words = (tricky * (COUNT // len(tricky) + 1))[:COUNT]
    assert _decode(_body("BYTES", words)).tolist() == [word.encode() for word in words]


def test_a_document_cut_in_the_wrong_place_is_parsed_whole() -> None:
    # Indented, the list ends in '"\n  ]': the first '"]' after it closes another list, so the cut is wrong.
    words = ["w"] * COUNT
    document = {"inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [COUNT], "data": words}]}
    indented = json.dumps(document, indent=2).encode()
    body = indented[: indented.rindex(b"}")] + b', "outputs": [{"name": "OUTPUT0"}], "tail": ["t"]}'
    assert b'"\n      ]' in body
    request, _ = decode_infer_request(body, None, model_name="m", model_version="", max_bytes=2**31)
    assert request.inputs["INPUT0"].tolist() == [b"w"] * COUNT
    assert request.requested_outputs == ["OUTPUT0"]


def _refusal(body: bytes) -> str:
    with pytest.raises(InvalidInput) as refused:
        _decode(body)
    return refused.value.message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda text: text.replace(b"1.5,", b"1e39,", 1), "outside the range of FP32"),
        (lambda text: text.replace(b"1.5,", b"1.5,,", 1), "not valid JSON"),
        (lambda text: text.replace(b"1.5,", b"null,", 1), None),  # null: NaN, as when parsed whole
        (lambda text: text.replace(_SHAPE, b'"shape":[7]'), "needs 7 values"),
        (lambda text: text.replace(b'"datatype":"FP32"', b'"datatype":"BYTES"'), "expected a string"),
        (lambda text: text.replace(_SHAPE, b'"shape":[1099511627776]'), "more than the limit"),
    ],
    ids=["out-of-range", "double-comma", "null", "count", "bytes-of-numbers", "absurd-shape"],
)
def test_refusals_are_those_of_a_whole_parse(edit: Callable[[bytes], bytes], expected: str | None) -> None:
    edited = edit(_body("FP32", [1.5] * COUNT))
    if expected is None:
        assert np.isnan(_decode(edited)).sum() == 1
    else:
        assert expected in _refusal(edited)


def test_a_long_list_where_no_data_is_expected_is_refused() -> None:
    body = _body("FP32", [1.0] * 4, parameters={"data": [1.0] * COUNT})
    assert "no input's data is expected" in _refusal(body)


def test_a_client_cannot_forge_a_placeholder() -> None:
    body = _body("BYTES", "0123456789abcdef0123456789abcdef:0", shape=[1], pad=[0] * (2 * COUNT))
    assert _decode(body).tolist() == [b"0123456789abcdef0123456789abcdef:0"]


def _longest_gap(work: Callable[[], Any]) -> float:
    """The longest time (s) a thread that sleeps 1 ms at a time waited for the GIL while ``work()`` ran."""
    gaps: list[float] = []
    done = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        work()
    finally:
        done.set()
        ticker.join()
    return max(gaps)


def test_no_piece_holds_the_gil_for_long() -> None:
    values = np.random.default_rng(4).standard_normal(4 * COUNT).astype(np.float32)
    body = _body("FP32", values)
    whole = _longest_gap(lambda: np.asarray(orjson.loads(body)["inputs"][0]["data"], np.float32))
    decoded: list[Any] = []
    sliced = _longest_gap(lambda: decoded.append(_decode(body)))
    assert np.array_equal(decoded[0], values)
    # A shared machine may deschedule the ticker: the bound is relative, not a fixed number of ms.
    assert sliced < whole / 3, f"longest GIL wait {sliced * 1e3:.1f} ms in pieces, {whole * 1e3:.1f} ms whole"

    response = InferResponse("m", "1", {"OUTPUT0": decoded[0]})
    encoded: list[bytes] = []
    written = _longest_gap(lambda: encoded.append(encode_infer_response(response, OutputFormat())[0]))
    assert np.array_equal(np.asarray(orjson.loads(encoded[0])["outputs"][0]["data"], np.float32), values)
    assert written < whole / 3, f"longest GIL wait {written * 1e3:.1f} ms writing in pieces"


def test_a_large_json_response_is_the_document_orjson_writes() -> None:
    values = np.random.default_rng(5).standard_normal(COUNT).astype(np.float32).reshape(-1, 2)
    response = InferResponse("m", "1", {"OUTPUT0": values, "OUTPUT1": values[:2]}, id="r1")
    encoded, json_length = encode_infer_response(response, OutputFormat())
    assert json_length is None
    expected = {
        "model_name": "m",
        "model_version": "1",
        "outputs": [
            {"name": "OUTPUT0", "datatype": "FP32", "shape": list(values.shape), "data": values.reshape(-1)},
            {"name": "OUTPUT1", "datatype": "FP32", "shape": [2, 2], "data": values[:2].reshape(-1)},
        ],
        "id": "r1",
    }
    assert encoded == orjson.dumps(expected, option=orjson.OPT_SERIALIZE_NUMPY)
