"""The model repository and the versions loaded from it.

``folders`` (the repository on disk: model folders, versions, config files), ``model_manager`` (load,
reload, unload; which versions serve), ``loaded_version`` (one serving version), ``triton_config`` (Triton's
model-config JSON out) and ``triton_model_config_in`` (Triton's config JSON in, for explicit loads).
"""

__all__: list[str] = []
