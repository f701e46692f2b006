"""PNG and JPEG bodies for image-shaped inputs, as TorchServe's image handlers take them (Pillow).

An input is image-shaped when it is rank 4 (``NCHW`` or ``NHWC``, the batch first) or rank 3 (``CHW`` or
``HWC``), with 1 or 3 channels. The image is converted to that many channels (``L`` or ``RGB``), resized to
the input's height and width when the model fixes them, and scaled to [0, 1] for a float input (as
torchvision's ``ToTensor``) or kept 0..255 for an integer one. Mean/std normalisation is the model's: an
ONNX model that wants it must contain it (``modelport import-mar`` says so).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from ..datatypes import by_name
from ..errors import InvalidInput, PayloadTooLarge, Unsupported
from ..inference import TensorSpec

__all__ = ["MAX_IMAGE_PIXELS", "MissingImageSupport", "decode_image", "is_image"]

# A decoded image's size bound: 40 megapixels (a 3-channel float32 copy is ~480 MB); Pillow's own bomb
# check (89 M pixels) is above it.
MAX_IMAGE_PIXELS = 40_000_000
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


class MissingImageSupport(Unsupported):
    """An image body on a server without Pillow (TorchServe's adapter answers it with 415)."""


def is_image(body: bytes) -> bool:
    """Whether ``body`` starts as a PNG or JPEG file does."""
    return body.startswith(_SIGNATURES)


def _layout(spec: TensorSpec) -> tuple[int, int, int, bool]:
    """(channels, height, width, channels_first) of an image-shaped input; -1 for a dynamic size."""
    dims = spec.shape[1:] if len(spec.shape) == 4 else spec.shape
    if len(spec.shape) in (3, 4):
        if dims[0] in (1, 3):
            return dims[0], dims[1], dims[2], True
        if dims[2] in (1, 3):
            return dims[2], dims[0], dims[1], False
    raise InvalidInput(
        f"an image body needs an image-shaped input (rank 4 NCHW/NHWC or rank 3, 1 or 3 channels); input "
        f"'{spec.name}' has shape {list(spec.shape)}: send a JSON array or an .npy array"
    )


def decode_image(body: bytes, spec: TensorSpec) -> np.ndarray[Any, Any]:
    """The image in ``body`` as one instance of input ``spec`` (with a batch dimension for a rank-4 input).
    :class:`InvalidInput` for an undecodable image, :class:`PayloadTooLarge` above :data:`MAX_IMAGE_PIXELS`,
    :class:`Unsupported` naming the package when Pillow is not installed."""
    channels, height, width, channels_first = _layout(spec)
    try:
        from PIL import Image
    except ImportError:
        raise MissingImageSupport(
            "image bodies need Pillow, which this server lacks: pip install 'modelport' (it is a serving "
            "dependency) or send a JSON or .npy array"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(body))
            pixels = image.width * image.height
            if pixels > MAX_IMAGE_PIXELS:
                raise PayloadTooLarge(
                    f"image of {image.width}x{image.height} pixels exceeds the limit of {MAX_IMAGE_PIXELS} "
                    "pixels: send a smaller image"
                )
            image = image.convert("L" if channels == 1 else "RGB")
            if height > 0 and width > 0 and image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
    except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidInput(f"request body is not a readable PNG/JPEG image: {error}") from None
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if channels_first:
        array = array.transpose(2, 0, 1)
    dtype = by_name(spec.datatype).numpy
    tensor = (
        (array.astype(np.float32) / 255.0).astype(dtype)
        if np.issubdtype(dtype, np.floating)
        else array.astype(dtype)
    )
    return tensor[np.newaxis] if len(spec.shape) == 4 else tensor
