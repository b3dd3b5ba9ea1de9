"""Reading a benchmark's own prompt files, which editjudge neither ships nor runs.

editjudge writes its own prompt text. The faithful protocols (``gedit``, ``imgedit``) instead use
the prompts of the benchmark itself, read at start-up from the user's checkout of it: GEdit-Bench's
``viescore/vie_prompts.py`` (a Python module of string constants, parsed with :mod:`ast`: it is
never imported or executed) and ImgEdit's ``Benchmark/Basic/prompts.json``. Any problem stops the
router with a message naming the file, the setting and what is wrong.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from pathlib import Path


class ReferencePromptsError(ValueError):
    """A reference prompt file cannot be used; the message names the file and the fault."""


def string_constants(path: Path, setting: str) -> dict[str, str]:
    """Every module-level ``NAME = "string"`` of the Python file at ``path``.

    The values are what importing the file would bind (escapes, implicit concatenation and
    triple quotes are resolved by Python's own parser), but nothing in the file runs.
    """
    source = _read(path, setting)
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise ReferencePromptsError(f"{setting}={path}: not valid Python: {exc.msg}") from None
    found: dict[str, str] = {}
    for node in tree.body:
        target, value = _assignment(node)
        if target is not None and isinstance(value, ast.Constant) and isinstance(value.value, str):
            found[target] = value.value
    return found


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        return (target.id, node.value) if isinstance(target, ast.Name) else (None, None)
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def require(constants: dict[str, str], names: Iterable[str], path: Path, setting: str) -> list[str]:
    """The values of ``names``, in order; a missing one names the file it should be in."""
    missing = [n for n in names if n not in constants]
    if missing:
        raise ReferencePromptsError(
            f"{setting}={path} has no string constant {', '.join(missing)}: is it the "
            "reference file?"
        )
    return [constants[n] for n in names]


def json_strings(path: Path, setting: str) -> dict[str, str]:
    """A JSON file holding one object of strings (ImgEdit's ``prompts.json``)."""
    try:
        data = json.loads(_read(path, setting))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReferencePromptsError(f"{setting}={path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ReferencePromptsError(f"{setting}={path}: expected a non-empty JSON object")
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise ReferencePromptsError(f"{setting}={path}: values must be strings ({bad[0]!r})")
    return dict(data)


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ReferencePromptsError(f"{setting}={path}: cannot read it: {exc.strerror}") from None
