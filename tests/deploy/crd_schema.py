"""Validate custom resources offline against the vendored CustomResourceDefinitions' OpenAPI v3 schemas.

``kubernetes-validate`` knows only Kubernetes' own kinds; a custom resource (KServe's InferenceService and
ServingRuntime, the Prometheus Operator's ServiceMonitor) is checked here with ``jsonschema`` against the
``openAPIV3Schema`` of the CRD file in ``deploy/*/crds/``, as the API server would on ``kubectl apply``:
strictly, so an unknown field (which the API server prunes silently, or refuses with ``--validate=strict``)
is an error, except under ``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["CRD_FILES", "crd_kinds", "validate_custom_resource"]

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = (
    *sorted((ROOT / "deploy" / "kserve" / "crds").glob("*.yaml")),
    *sorted((ROOT / "deploy" / "kubernetes" / "crds").glob("*.yaml")),
)

Schema = dict[str, Any]


def _strict(schema: Schema) -> Schema:
    """The OpenAPI schema as JSON Schema: int-or-string and nullable spelt out, unknown fields refused."""
    schema = dict(schema)
    if schema.pop("x-kubernetes-int-or-string", False):
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.pop("nullable", False) and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    preserve = schema.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in schema:
        schema["properties"] = {name: _strict(sub) for name, sub in schema["properties"].items()}
        if not preserve and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = _strict(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [_strict(sub) for sub in schema[key]]
    return schema


@cache
def _schemas() -> dict[tuple[str, str], Schema]:
    """(apiVersion, kind) -> the strict JSON schema of every served version of every vendored CRD."""
    found: dict[tuple[str, str], Schema] = {}
    for path in CRD_FILES:
        crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                found[(f"{group}/{version['name']}", kind)] = schema
    return found


def crd_kinds() -> set[tuple[str, str]]:
    """The (apiVersion, kind) pairs that have a vendored schema."""
    return set(_schemas())


def validate_custom_resource(document: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``document`` breaks its CRD's schema, ``KeyError`` if no
    vendored CRD defines its apiVersion and kind."""
    schema = _schemas()[(document["apiVersion"], document["kind"])]
    jsonschema.Draft4Validator(schema).validate(document)
