"""A model folder's Triton ``config.pbtxt`` (protobuf text format), read as config.yaml's schema.

A repository moved from Triton keeps its ``config.pbtxt`` files: a model folder without a ``config.yaml``
is configured by its ``config.pbtxt`` if it has one. The text is parsed into our ModelConfig message (the
subset of Triton's this server reads: a key it lacks is refused, naming the line), written as protobuf's
JSON form and translated as a load request's Triton ModelConfig JSON is (:mod:`.triton_model_config_in`),
then validated as config.yaml is (:func:`~..model_config.parse_model_config`, with Triton's key names in
the messages). Blocking (reads the file): call it off the event loop.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format, text_format

from ..config_files import CONFIG_MAX_BYTES, UnreadableFile, read_text
from ..errors import InvalidInput
from ..model_config import ModelConfig, ModelConfigError, parse_model_config
from ..protocols.generated import model_config_pb2
from .triton_model_config_in import TRITON_KEY_NAMES, from_triton_config

__all__ = ["PBTXT_FILE", "load_pbtxt"]

PBTXT_FILE = "config.pbtxt"


def load_pbtxt(path: Path, *, model: str) -> ModelConfig:
    """The config of ``model`` in the ``config.pbtxt`` at ``path``; :class:`ModelConfigError` naming the
    file (and the line or key) when it cannot be read, parsed or honoured."""
    try:
        text = read_text(path, limit=CONFIG_MAX_BYTES)
    except (UnreadableFile, OSError) as error:
        raise ModelConfigError(f"{path}: {error}") from None
    message = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ModelConfigError(f"{path}: not a Triton model config this server reads ({error})") from None
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    try:
        translated = from_triton_config(data, model=model, where=str(path))
    except InvalidInput as error:
        raise ModelConfigError(error.message) from None
    return parse_model_config(translated, source=str(path), names=TRITON_KEY_NAMES)
