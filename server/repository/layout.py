"""The names of the files a model's folder holds: ``REPO/MODEL/config.yaml`` or ``REPO/MODEL/config.pbtxt``
(Triton's), and ``REPO/MODEL/VERSION/model.onnx``."""

from __future__ import annotations

from ..model_config import DEFAULT_MODEL_FILE

__all__ = ["CONFIG_FILE", "MODEL_FILE", "TRITON_CONFIG_FILE"]

CONFIG_FILE = "config.yaml"
# Triton's ModelConfig in protobuf text format, read when there is no config.yaml (a folder with both is
# refused: which one wins would be a guess).
TRITON_CONFIG_FILE = "config.pbtxt"
MODEL_FILE = DEFAULT_MODEL_FILE  # unless the config's model_filename names another
