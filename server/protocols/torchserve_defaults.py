"""The default version of each model, as TorchServe's ``PUT /models/M/V/set-default`` sets it.

The repository has no default of its own: a request without a version gets the highest ready one. A default
set here is the version ``/predictions/M`` (TorchServe's inference API) answers with, while that version
serves; it lives in this process only (not written to the repository) and goes with an unload of the model.
"""

from __future__ import annotations

from ..errors import ModelNotFound
from ..repository.model_manager import ModelManager

__all__ = ["DefaultVersions", "normalise_version"]


class DefaultVersions:
    """Model name -> the version set as its default (shared by the management and inference adapters)."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager
        self._chosen: dict[str, int] = {}

    def set(self, name: str, version: str) -> int:
        """Make ``version`` (serving) the default of ``name``; :class:`ModelNotFound` otherwise."""
        ready = self._manager.ready_versions(name)
        number = normalise_version(version)
        if not ready:
            raise ModelNotFound(f"Model not found: {name}")
        if not number.isdigit() or int(number) not in ready:
            serving = ", ".join(map(str, ready))
            raise ModelNotFound(
                f"Model version {version} does not exist for model {name} (serving: {serving})"
            )
        self._chosen[name] = int(number)
        return int(number)

    def version_for(self, name: str, version: str) -> str:
        """The version a request for ``name`` with ``version`` ("" = the default) goes to: "" is the set
        default while it serves, else the data plane's choice (the highest ready version)."""
        if version:
            return normalise_version(version)
        chosen = self._chosen.get(name)
        if chosen is not None and chosen in self._manager.ready_versions(name):
            return str(chosen)
        return ""

    def default_of(self, name: str) -> int | None:
        """The version ``name``'s unversioned requests get, None when it serves none."""
        chosen = self.version_for(name, "")
        if chosen:
            return int(chosen)
        ready = self._manager.ready_versions(name)
        return max(ready) if ready else None


def normalise_version(version: str) -> str:
    """TorchServe's versions are written ``2.0``; ours are whole numbers: ``2.0`` and ``2`` are version 2."""
    whole, dot, fraction = version.partition(".")
    return whole if dot and whole.isdigit() and fraction.strip("0") == "" else version
