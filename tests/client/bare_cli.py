"""Run ``editjudge`` as a bare ``pip install editjudge`` would: no server extra importable.

Usage: ``python bare_cli.py [--no-plot] ARGS...``; ``--no-plot`` also hides matplotlib.
"""

from __future__ import annotations

import importlib.abc
import sys

BLOCKED = {
    "server",
    "editjudge.server",
    "fastapi",
    "starlette",
    "uvicorn",
    "aiohttp",
    "orjson",
    "pydantic_settings",
    "prometheus_client",
    "multipart",
    "python_multipart",
    "vllm",
}


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] in BLOCKED or name.startswith("editjudge.server"):
            raise ModuleNotFoundError(f"No module named {name!r} (bare install)", name=name)
        return None


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--no-plot"]:
        BLOCKED.add("matplotlib")
        args = args[1:]
    sys.meta_path.insert(0, _Blocker())
    from editjudge.client.cli import main

    sys.exit(main(args))
