"""Read the CLI's input file: JSONL or CSV rows of ``id, image, source_image, instruction``.

Paths are relative to the input file's folder. Every other column (``protocol`` aside) goes into
the item's ``meta``, which the router returns unchanged in the result: a benchmark's task type,
language or edit type travels with the score (``editjudge report --by``). A malformed file (bad
JSON, a missing required field or column, a duplicate id, meta over its size limit) fails here in
a second with the line to fix, instead of halfway through a long run. A row whose image file does
not exist is not malformed: it becomes an error result when it is scored (``file_not_found``), and
the rest of the run goes on; :func:`missing_files` lets the caller say so up front.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._exceptions import EditJudgeError
from ._models import Item

_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
#: Columns that make the item itself; every other column goes into its ``meta``.
ITEM_COLUMNS = frozenset({"id", "image", "source_image", "instruction", "protocol"})
META_MAX_BYTES = 4096  # the router's limit on one item's meta


class InputFileError(EditJudgeError):
    """The input file cannot be used as it is."""


def read_items(path: Path) -> list[Item]:
    """All rows of ``path`` as items with string ids (default: the row's position, from 0)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputFileError(f"input file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {path}: {exc}") from None
    rows = _jsonl(text, path) if _is_jsonl(path, text) else _csv(text, path)
    base = path.resolve().parent
    items: list[Item] = []
    first_line: dict[str, int] = {}
    for position, (line, row) in enumerate(rows):
        item = _item(row, position, base, f"{path}:{line}")
        if item.id in first_line:
            raise InputFileError(
                f"{path}:{line}: duplicate id {item.id!r} (first on line {first_line[item.id]})"
            )
        first_line[str(item.id)] = line
        items.append(item)
    return items


def _is_jsonl(path: Path, text: str) -> bool:
    if path.suffix.lower() in _JSONL_SUFFIXES:
        return True
    if path.suffix.lower() == ".csv":
        return False
    return text.lstrip().startswith("{")


def _jsonl(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputFileError(f"{path}:{number}: expected a JSON object")
        yield number, row


def _csv(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    missing = {"image", "instruction"} - set(reader.fieldnames or [])
    if missing:
        raise InputFileError(f"{path}: CSV header lacks column(s): {', '.join(sorted(missing))}")
    for row in reader:
        yield reader.line_num, {k: v for k, v in row.items() if k is not None and v != ""}


def _item(row: dict[str, Any], position: int, base: Path, where: str) -> Item:
    raw_id = row.get("id", position)
    if raw_id is None or isinstance(raw_id, dict | list) or str(raw_id).strip() == "":
        raise InputFileError(f"{where}: 'id' must be a non-empty string or number")
    instruction = row.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise InputFileError(f"{where}: 'instruction' must be a non-empty string")
    protocol = row.get("protocol")
    return Item(
        image=_path(row.get("image"), base, where, "image"),
        instruction=instruction,
        source_image=(
            None
            if row.get("source_image") in (None, "")
            else _path(row["source_image"], base, where, "source_image")
        ),
        id=str(raw_id),
        protocol=str(protocol) if protocol else None,
        meta=_meta(row, where),
    )


def _meta(row: dict[str, Any], where: str) -> dict[str, Any] | None:
    meta = {k: v for k, v in row.items() if k not in ITEM_COLUMNS}
    if not meta:
        return None
    size = len(json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode())
    if size > META_MAX_BYTES:
        columns = ", ".join(sorted(meta))
        raise InputFileError(
            f"{where}: the extra columns ({columns}) make a meta of {size} bytes; "
            f"the router takes at most {META_MAX_BYTES}"
        )
    return meta


def _path(value: Any, base: Path, where: str, field: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise InputFileError(f"{where}: '{field}' must be a file path")
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else base / path


def missing_files(items: list[Item]) -> list[tuple[str, Path]]:
    """``(id, path)`` of every image path in ``items`` that is not an existing file."""
    return [
        (str(item.id), p)
        for item in items
        for p in (item.image, item.source_image)
        if isinstance(p, Path) and not p.is_file()
    ]
