"""Tagging errors with request ids: one batch's error reaches every request of the batch."""

from __future__ import annotations

from modelport.server.errors import InvalidInput
from modelport.server.recording import tag_with_request_id


def test_one_error_shared_by_a_batch_names_each_request_its_own_id() -> None:
    shared = InvalidInput("model 'm': ONNX Runtime refused the batch")
    first = tag_with_request_id(shared, "aaa")
    second = tag_with_request_id(shared, "bbb")
    assert first.message == "model 'm': ONNX Runtime refused the batch (request id: aaa)"
    assert second.message == "model 'm': ONNX Runtime refused the batch (request id: bbb)"
    assert isinstance(second, InvalidInput) and str(second) == second.message
    assert tag_with_request_id(first, "aaa").message == first.message
