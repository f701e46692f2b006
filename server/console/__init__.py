"""The operator console: static pages on the HTTP port (``/console``) over the server's own endpoints.

``site`` (the routes: pages, assets, the live series, the model files), ``model_files`` (the few read-only
files of a model folder the console shows), ``assets/`` (HTML, CSS and JavaScript, served from the package).
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .site import ConsoleSite

__all__ = ["ConsoleSite"]

__getattr__ = lazy_exports(__name__, {"ConsoleSite": "site"})
