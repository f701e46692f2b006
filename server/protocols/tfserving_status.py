"""A model's status as TF Serving reports it (``GetModelStatusResponse``), for its REST and gRPC adapters:
each version with TF Serving's state, latest first, and an error code with the reason of one that failed."""

from __future__ import annotations

from dataclasses import dataclass

from ..dataplane import DataPlane
from ..errors import ModelNotFound

__all__ = ["VersionStatus", "model_status"]

# Triton's states (the repository index) -> TF Serving's ModelVersionStatus.State.
_STATES = {"READY": "AVAILABLE", "LOADING": "LOADING", "UNLOADING": "UNLOADING", "UNAVAILABLE": "END"}


@dataclass(frozen=True, slots=True)
class VersionStatus:
    version: int
    state: str  # ModelVersionStatus.State's name
    error_code: str  # tensorflow.error.Code's name: OK, or UNKNOWN with the reason
    error_message: str


def model_status(dataplane: DataPlane, name: str, version: str) -> list[VersionStatus]:
    """Every version of ``name`` (``version``: only that one), latest first; :class:`ModelNotFound` as TF
    Serving words it when there is none, with the reasons the repository has."""
    rows = [row for row in dataplane.repository_index() if row.name == name]
    if not rows:
        raise ModelNotFound(f"Could not find any versions of model {name}")
    versions = [row for row in rows if row.version and (not version or row.version == version)]
    if not versions:
        which = f"version {version}" if version else "any versions"
        reasons = "; ".join(row.reason for row in rows if row.reason)
        because = f": {reasons}" if reasons else ""
        raise ModelNotFound(f"Could not find {which} of model {name}{because}")
    return [
        VersionStatus(
            int(row.version),
            _STATES.get(row.state, "UNKNOWN"),
            "UNKNOWN" if row.state == "UNAVAILABLE" else "OK",
            row.reason if row.state == "UNAVAILABLE" else "",
        )
        for row in sorted(versions, key=lambda row: int(row.version), reverse=True)
    ]
