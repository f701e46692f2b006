"""Importing TensorFlow, Keras and tf2onnx quietly (they log at import and on every conversion)."""

from __future__ import annotations

import logging
import os
from types import ModuleType

__all__ = ["import_tensorflow", "tf2onnx_version"]


def import_tensorflow() -> tuple[ModuleType, ModuleType]:
    """``(tensorflow, tf2onnx)``, imported with TensorFlow's C++ info logs and tf2onnx's chatter off."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf
    import tf2onnx

    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    return tf, tf2onnx


def tf2onnx_version() -> str:
    """tf2onnx's version string."""
    import tf2onnx

    return str(tf2onnx.__version__)
