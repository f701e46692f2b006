"""The model repository and the versions loaded from it.

``folders`` (the repository on disk: model folders, versions, config files), ``model_manager`` (load,
reload, unload; which versions serve), ``loaded_version`` (one serving version), ``triton_config`` (Triton's
model-config JSON out) and ``triton_model_config_in`` (Triton's config JSON in, for explicit loads).
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .explicit import ExplicitControl
    from .folders import Repository
    from .loaded_version import LoadedVersion, ModelIndexEntry
    from .model_manager import ModelManager
    from .triton_config import PLATFORM, triton_model_config

# What the layers above import from this package; each is imported from its module on first use.
__all__ = [
    "PLATFORM",
    "ExplicitControl",
    "LoadedVersion",
    "ModelIndexEntry",
    "ModelManager",
    "Repository",
    "triton_model_config",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "ExplicitControl": "explicit",
        "LoadedVersion": "loaded_version",
        "ModelIndexEntry": "loaded_version",
        "ModelManager": "model_manager",
        "PLATFORM": "triton_config",
        "Repository": "folders",
        "triton_model_config": "triton_config",
    },
)
