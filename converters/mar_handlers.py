"""What a ``.mar``'s handler did around the model, read (never run) so the user knows what is left to them.

TorchServe's built-in handlers are known by name; a custom handler file is parsed with :mod:`ast` only (its
code never executes here, nor in the server) for the steps that matter: which of ``preprocess``,
``inference``, ``postprocess`` and ``handle`` it defines, and the transforms and output functions it calls.
The converted ONNX model does none of this; :func:`describe_handler` says what modelport's TorchServe
adapter does in their place and what the user must add (to the model, or to the client).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass

__all__ = ["BUILTIN_HANDLERS", "HandlerReport", "describe_handler", "labels_from_index_to_name"]

_IMAGE_SERVED = (
    "modelport decodes a PNG/JPEG body and resizes it to the model's input, scaled to [0, 1] (no crop, "
    "no mean/std normalisation)"
)
# TorchServe's built-in handlers: what each did before and after the model (ts/torch_handler/*.py), and
# what modelport's /predictions does in its place.
BUILTIN_HANDLERS: dict[str, tuple[str, str, str]] = {
    "image_classifier": (
        "Resize(256), CenterCrop(224), ToTensor, Normalize(mean=[0.485, 0.456, 0.406], "
        "std=[0.229, 0.224, 0.225])",
        "softmax, then the top-5 {label: probability} map (index_to_name.json)",
        f"{_IMAGE_SERVED}; with labels.txt (written from index_to_name.json) it answers the top-5 map, "
        "softmax applied to logits. Add the normalisation to the model or send normalised arrays",
    ),
    "image_segmenter": (
        "Resize(256), CenterCrop(224), ToTensor, Normalize(ImageNet mean/std)",
        "softmax over classes, then argmax per pixel",
        f"{_IMAGE_SERVED}; it answers the raw output. Add normalisation and the argmax yourself",
    ),
    "object_detector": (
        "ToTensor",
        "boxes, labels and scores filtered at score >= 0.5, labels named (index_to_name.json)",
        f"{_IMAGE_SERVED}; it answers the raw outputs: filter and name the boxes in the client",
    ),
    "text_classifier": (
        "text normalised, tokenised and mapped to ids (source_vocab.pt), n-grams",
        "softmax, the class named (index_to_name.json)",
        "modelport takes token ids (JSON or .npy arrays), not text: tokenise in the client; with labels.txt "
        "it answers the top-5 {label: probability} map",
    ),
}
_STEPS = ("preprocess", "inference", "postprocess", "handle")
_NOTABLE_CALLS = (
    "Normalize",
    "Resize",
    "CenterCrop",
    "ToTensor",
    "softmax",
    "sigmoid",
    "topk",
    "argmax",
    "tokenizer",
    "from_pretrained",
)


@dataclass(frozen=True, slots=True)
class HandlerReport:
    """The handler's kind (a built-in's name, ``custom`` or ``base``) and what the user must know."""

    kind: str
    before: str  # what it did before the model
    after: str  # and after
    instead: str  # what modelport does / what is left to the user


def _custom(name: str, source: bytes) -> HandlerReport:
    try:
        tree = ast.parse(source.decode("utf-8", "replace"), name)
    except SyntaxError as error:
        return HandlerReport("custom", f"{name} does not parse ({error.msg})", "unknown", "review it by hand")
    steps = sorted({n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in _STEPS})
    calls = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if called in _NOTABLE_CALLS:
                calls.add(called)
    return HandlerReport(
        "custom",
        f"custom handler {name} (not run): defines {', '.join(steps) or 'no handler steps'}",
        f"calls {', '.join(sorted(calls))}" if calls else "no known transforms or output functions found",
        "modelport serves the model's raw inputs and outputs: do this handler's pre- and post-processing "
        "in the client (or in the model before converting)",
    )


def describe_handler(handler: str, source: bytes | None) -> HandlerReport:
    """The report for manifest ``handler`` (``source``: the handler file's bytes when it is a member)."""
    if source is not None:
        return _custom(handler.split(":", 1)[0], source)
    known = BUILTIN_HANDLERS.get(handler.removeprefix("ts.torch_handler."))
    if known is not None:
        return HandlerReport(handler, *known)
    return HandlerReport(
        "base" if handler in ("", "base_handler") else handler,
        "the tensor as sent",
        "the output as a list",
        "modelport answers the same way: the output as JSON, a list per instance",
    )


def labels_from_index_to_name(raw: bytes) -> list[str] | None:
    """labels.txt's lines from TorchServe's ``index_to_name.json`` (``{"0": "cat"}`` or
    ``{"0": ["n0", "cat"]}``, indices 0..N-1), or None when it is not that."""
    try:
        mapping = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(mapping, dict) or sorted(mapping, key=str) != sorted(
        str(i) for i in range(len(mapping))
    ):
        return None
    labels = []
    for index in range(len(mapping)):
        value = mapping[str(index)]
        label = value[-1] if isinstance(value, list) and value else value
        if not isinstance(label, str):
            return None
        labels.append(label.replace("\n", " "))
    return labels
