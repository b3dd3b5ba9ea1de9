"""The version the router reports: the package's, defined once in ``editjudge/__init__.py``."""

from __future__ import annotations

from editjudge import __version__

__all__ = ["__version__"]
