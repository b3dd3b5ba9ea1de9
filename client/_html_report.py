"""``editjudge report --html``: one self-contained HTML file to look at a run, or compare two.

The page is static: the data (results, instructions, ``meta``, image thumbnails as data URLs) is
embedded as JSON, and a small script in the page (``_report_page/``) draws the summary, the
distributions, the worst items and the sortable, filterable table from it. A Content-Security-
Policy allows the page's own script and style (by hash) and ``data:`` images, and nothing else,
so the file works offline, can be mailed, and cannot load anything even if a judge's reasoning
contains markup: all text is put into the page as text, never as HTML.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ._aggregate import metric_names
from ._models import Item, ScoreResult
from ._thumbnails import Thumbnails

_RAW_CHARS = 4000  # a judge reply that could not be parsed, kept for the reader, up to this long


@dataclass(frozen=True)
class Run:
    """One run's results, and the input file's items when the report has them."""

    label: str
    file: str
    results: Sequence[ScoreResult]
    items: Sequence[Item] | None = None


@dataclass(frozen=True)
class ReportOptions:
    title: str = "editjudge report"
    worst: int = 12
    thumb_size: int = 256
    thumb_quality: int = 75


def build(
    runs: Sequence[Run],
    options: ReportOptions,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The page's data for one run, or two runs over the same ids (``runs[1]`` vs ``runs[0]``).

    ``progress(done, total)`` is told as thumbnails are made.
    """
    if not 1 <= len(runs) <= 2:
        raise ValueError("a report shows one run, or compares two")
    thumbs = Thumbnails(options.thumb_size, options.thumb_quality)
    by_id = [{str(r.id): r for r in run.results} for run in runs]
    inputs = [{str(i.id): i for i in run.items or []} for run in runs]
    rows = [_row(item_id, by_id, inputs, thumbs) for item_id in _ids(runs)]
    images = thumbs.render(progress=lambda done: progress(done, len(thumbs)) if progress else None)
    return {
        "title": options.title,
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "compare": len(runs) == 2,
        "runs": [_run_summary(run) for run in runs],
        "metrics": metric_names(r for run in runs for r in run.results),
        "meta": _meta_fields(row["meta"] for row in rows),
        "worst": options.worst,
        "images": [t.url for t in images],
        "image_problems": [t.problem for t in images if t.problem],
        "items": rows,
    }


def render(data: dict[str, Any]) -> str:
    """The HTML page with ``data`` embedded."""
    page = resources.files(__package__) / "_report_page"
    css = (page / "report.css").read_text(encoding="utf-8")
    script = (page / "report.js").read_text(encoding="utf-8")
    template = (page / "report.html").read_text(encoding="utf-8")
    # In a <script> block only "</" can end it early; JSON allows "\u003c" for "<" anywhere.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    payload = payload.replace("<", "\\u003c")
    policy = (
        f"default-src 'none'; img-src data:; style-src '{_sha256(css)}'; "
        f"script-src '{_sha256(script)}'; base-uri 'none'; form-action 'none'"
    )
    parts = {
        "{{policy}}": policy,
        "{{title}}": html.escape(data["title"]),
        "{{css}}": css,
        "{{data}}": payload,
        "{{script}}": script,
    }
    for marker, text in parts.items():
        template = template.replace(marker, text, 1)
    return template


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def _ids(runs: Sequence[Run]) -> list[str]:
    """Input order first, then results without an input row, each id once."""
    seen: dict[str, None] = {}
    for run in runs:
        for item in run.items or []:
            seen.setdefault(str(item.id))
    for run in runs:
        for result in run.results:
            seen.setdefault(str(result.id))
    return list(seen)


def _row(
    item_id: str,
    by_id: list[dict[str, ScoreResult]],
    inputs: list[dict[str, Item]],
    thumbs: Thumbnails,
) -> dict[str, Any]:
    items = [table.get(item_id) for table in inputs]
    first = next((i for i in items if i is not None), None)
    results = [table.get(item_id) for table in by_id]
    row: dict[str, Any] = {
        "id": item_id,
        "instruction": first.instruction if first else None,
        "src": _thumb(first.source_image if first else None, thumbs),
        "edit": _thumb(items[0].image if items[0] else None, thumbs),
        "meta": _meta([*(r.meta if r else None for r in results), first.meta if first else None]),
        "runs": [_result(r) for r in results],
    }
    if (
        len(items) == 2
        and items[1] is not None
        and (items[0] is None or items[1].image != items[0].image)
    ):
        row["edit_b"] = _thumb(items[1].image, thumbs)  # the compared run edited other images
    return row


def _thumb(path: object, thumbs: Thumbnails) -> int | None:
    return thumbs.add(path) if isinstance(path, Path) else None


def _result(result: ScoreResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    out: dict[str, Any] = {
        "status": result.status,
        "score": _number(result.score),
        "scores": {k: _number(v) for k, v in result.scores.items()},
        "reasoning": result.reasoning,
        "error": result.error.model_dump() if result.error else None,
        "backend": result.backend,
        "latency_ms": result.latency_ms,
        "rank": result.rank,
        "z_score": _number(result.z_score),
    }
    if result.raw and (not result.ok or not result.reasoning):
        out["raw"] = result.raw[:_RAW_CHARS]
    return out


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: such a value shows as absent."""
    return value if value is not None and math.isfinite(value) else None


def _meta(metas: Iterable[dict[str, Any] | None]) -> dict[str, str | float | bool | None]:
    """The item's ``meta``: the first of its runs' results that has one, else its input row's;
    values as JSON scalars."""
    for meta in metas:
        if isinstance(meta, dict) and meta:
            return {str(k): _scalar(v) for k, v in meta.items()}
    return {}


def _scalar(value: object) -> str | float | bool | None:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return _number(float(value))
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _meta_fields(metas: Iterable[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for meta in metas:
        for name in meta:
            names.setdefault(name)
    return list(names)


def _run_summary(run: Run) -> dict[str, Any]:
    prints = {
        json.dumps(r.fingerprint.model_dump(exclude={"sampling"}), sort_keys=True)
        for r in run.results
        if r.fingerprint is not None
    }
    first = next((r.fingerprint for r in run.results if r.fingerprint is not None), None)
    return {
        "label": run.label,
        "file": run.file,
        "inputs": run.items is not None,
        "fingerprint": first.model_dump() if first else None,
        "fingerprints": len(prints),
    }
