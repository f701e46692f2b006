"""A Triton model repository's ``config.pbtxt`` (protobuf text format of Triton's ModelConfig), read into
``config.yaml``'s schema.

The text is parsed against our copy of Triton's ModelConfig (proto/model_config.proto, which declares every
field Triton has), turned into the ModelConfig JSON that ``tritonclient``'s ``load_model(config=...)``
sends, and translated by :func:`~.triton_model_config_in.from_triton_config`: one translation for both
forms, so a field this server does not do (``sequence_batching``, ``ensemble_scheduling``, a platform that
is not ONNX Runtime) refuses the model naming that field, as a JSON load request would be refused.
Blocking: call it off the event loop.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format, text_format

from ..config_files import CONFIG_MAX_BYTES, UnreadableFile, read_text
from ..errors import InvalidInput
from ..model_config import ModelConfig, ModelConfigError, parse_model_config
from ..protocols.generated import model_config_pb2
from .triton_model_config_in import TRITON_KEY_NAMES, from_triton_config

__all__ = ["load_triton_config"]


def load_triton_config(path: Path, *, model: str) -> ModelConfig:
    """The configuration ``path`` (a ``config.pbtxt``) gives model ``model``; :class:`ModelConfigError`
    naming the file, the line or the field otherwise. ``FileNotFoundError`` when it does not exist."""
    try:
        text = read_text(path, limit=CONFIG_MAX_BYTES)
    except UnreadableFile as error:
        raise ModelConfigError(f"{path}: {error}") from None
    message = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ModelConfigError(
            f"{path}: not a Triton ModelConfig in protobuf text format ({error})"
        ) from None
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    # proto3 writes no default: a max_batch_size left out (or 0) is Triton's "does not batch", not ours
    # "read it from the graph".
    data["max_batch_size"] = message.max_batch_size
    try:
        translated = from_triton_config(data, model=model, where=str(path))
    except InvalidInput as error:
        raise ModelConfigError(str(error)) from None
    return parse_model_config(translated, source=f"{path} (Triton ModelConfig)", names=TRITON_KEY_NAMES)
