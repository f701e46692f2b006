"""The worker channel: typed messages through a real SOCK_SEQPACKET socket pair, with descriptors; the
server's side of it imports neither the worker module nor ONNX Runtime; custom operator libraries stay in
the model's folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelport.server.model_config import ModelConfigError, SessionConfig, parse_model_config
from modelport.server.workers.channel import (
    Done,
    Failed,
    LoadFailed,
    LogFile,
    Message,
    Ready,
    Run,
    Stop,
    message_buffer,
    recv_message,
    send_message,
)
from modelport.server.workers.session import ModelLoadError, open_session
from modelport.server.workers.shm import TensorLayout

from tests.helpers.onnx_models import identity_model, write_model


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield a, b
    a.close()
    b.close()


LAYOUT = TensorLayout("x", "FP32", (2, 4), 64, 32)
MESSAGES: list[Message] = [
    LogFile(),
    Ready(pid=12, load_ns=3_000),
    LoadFailed("model.onnx: not a valid ONNX model"),
    Run([LAYOUT], ["y"], region=65536),
    Run([LAYOUT], [], region=None),
    Done([LAYOUT], infer_ns=10, copy_ns=2, region=None),
    Failed("invalid", "tensor 'x': bad"),
    Stop(),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_arrives_as_it_was_sent(
    pair: tuple[socket.socket, socket.socket], message: Message
) -> None:
    a, b = pair
    send_message(a, message)
    received, fds = recv_message(b, message_buffer())
    assert received == message and fds == []


def test_descriptors_travel_with_their_message(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    read_end, write_end = os.pipe()
    try:
        send_message(a, Run([LAYOUT], ["y"], region=4096), [write_end])
        received, fds = recv_message(b, message_buffer())
        assert isinstance(received, Run) and received.region == 4096 and len(fds) == 1
        os.write(fds[0], b"through the passed descriptor")
        os.close(fds[0])
        assert os.read(read_end, 100) == b"through the passed descriptor"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_packet_that_is_no_message_is_a_protocol_error(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    for garbage in (b"not json", b'["no such tag"]', b'{"op": "run"}', b'["ready", "x"]'):
        a.sendall(garbage)
        with pytest.raises(ValueError, match="protocol error"):
            recv_message(b, message_buffer())
    a.close()
    assert recv_message(b, message_buffer()) == (None, [])


def test_the_server_side_imports_neither_the_worker_module_nor_onnxruntime() -> None:
    code = (
        "import sys; import modelport.server.workers.pool, modelport.server.batching.batcher; "
        "print(sorted(m for m in ('onnxruntime', 'modelport.server.workers.worker') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.mark.parametrize("name", ["../libop.so", "/usr/lib/libop.so", "", "a/../../b.so"])
def test_custom_op_libraries_outside_the_model_folder_are_refused(name: str) -> None:
    with pytest.raises(
        ModelConfigError, match=r"config\.yaml: session\.custom_op_libraries\[0\]: .*model's folder"
    ):
        parse_model_config({"session": {"custom_op_libraries": [name]}}, source="m/config.yaml")


def test_a_custom_op_library_linking_out_of_the_folder_or_missing_is_a_load_error(tmp_path: Path) -> None:
    model = write_model(tmp_path, "m", identity_model())
    outside = tmp_path / "libelsewhere.so"
    outside.write_bytes(b"")
    (tmp_path / "m" / "liblink.so").symlink_to(outside)
    for name, expected in (("liblink.so", "outside the model's folder"), ("libnone.so", "does not exist")):
        config = SessionConfig(custom_op_libraries=(name,))
        with pytest.raises(
            ModelLoadError, match=rf"session\.custom_op_libraries\[0\]: '{name}' .*{expected}"
        ):
            open_session(model, model="m", config=config, providers=("cpu",))
    (tmp_path / "m" / "libjunk.so").write_bytes(b"not a shared library")
    with pytest.raises(ModelLoadError, match=r"session\.custom_op_libraries\[0\]: .*libjunk\.so"):
        open_session(
            model, model="m", config=SessionConfig(custom_op_libraries=("libjunk.so",)), providers=("cpu",)
        )
