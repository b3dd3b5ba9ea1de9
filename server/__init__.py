"""editjudge router: a FastAPI front end that fans image-edit scoring out over vLLM servers."""

from __future__ import annotations

__version__ = "0.1.0"
