"""Benchmark aggregation of a results file: means per group of ``meta`` fields, as GEdit reports.

GEdit-Bench (``calculate_statistics.py``) reports, for one language at a time, the mean semantic
consistency, perceptual quality and overall score of each task type, and as its headline the
unweighted mean of those group means; the ``intersection`` subset likewise. :func:`aggregate` is
that computation for any grouping: results are grouped by the values of ``meta`` fields (``by``),
optionally restricted to a ``subset`` (``FIELD=VALUE`` on ``meta``), and for every metric (``score``
and each sub-score) it gives each group's mean, the ``macro`` mean of the group means (GEdit's
headline) and the ``overall`` mean over all scored items. Error items are counted per group and
never averaged (the reference drops an item that cannot be scored).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._models import ScoreResult


@dataclass(frozen=True)
class Group:
    """One group: its ``meta`` values, scored items ``n``, error items, and metric means."""

    key: dict[str, Any]
    n: int
    errors: int
    mean: dict[str, float]


@dataclass(frozen=True)
class Report:
    """The aggregation of a results file (see the module docstring)."""

    by: list[str]
    subset: dict[str, str]
    groups: list[Group]
    macro: dict[str, float | None]
    overall: dict[str, float]
    n: int = 0
    errors: int = 0
    metrics: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``editjudge report --format json``."""
        return {
            "by": self.by,
            "subset": self.subset,
            "groups": [
                {"key": g.key, "n": g.n, "errors": g.errors, "mean": g.mean} for g in self.groups
            ],
            "macro": self.macro,
            "overall": self.overall,
            "n": self.n,
            "errors": self.errors,
        }


def aggregate(
    results: Iterable[ScoreResult],
    by: Sequence[str] = (),
    subset: Mapping[str, str] | None = None,
    metrics: Sequence[str] | None = None,
) -> Report:
    """Group ``results`` by the ``meta`` fields ``by`` (all in one group if none) and average.

    ``subset`` keeps results whose ``meta`` matches every ``FIELD: VALUE`` (see :func:`matches`).
    ``metrics`` limits the metrics reported (default: ``score`` and every sub-score seen).
    """
    wanted = dict(subset or {})
    kept = [r for r in results if all(matches(_meta(r).get(f), v) for f, v in wanted.items())]
    names = list(metrics) if metrics else metric_names(r for r in kept if _scored(r))
    buckets: dict[str, list[ScoreResult]] = {}
    keys: dict[str, dict[str, Any]] = {}
    for r in kept:
        key = {f: _meta(r).get(f) for f in by}
        label = json.dumps(key, sort_keys=True, default=str)
        buckets.setdefault(label, []).append(r)
        keys[label] = key
    groups = [_group(keys[k], buckets[k], names) for k in sorted(buckets, key=_order(keys))]
    scored = [r for r in kept if _scored(r)]
    return Report(
        by=list(by),
        subset=wanted,
        groups=groups,
        macro={m: _macro(groups, m) for m in names},
        overall=_means(scored, names),
        n=len(scored),
        errors=len(kept) - len(scored),
        metrics=names,
    )


def matches(value: Any, wanted: str) -> bool:
    """Whether a ``meta`` value is ``wanted`` as typed on a command line: text compares as is;
    JSON true/false and "True"/"False" (a CSV cell) match ``true``/``false`` in any case;
    numbers compare as JSON writes them."""
    return value is not None and _text(value) == _text(wanted)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.lower() if value.lower() in ("true", "false") else value
    return json.dumps(value, sort_keys=True)


def _meta(result: ScoreResult) -> dict[str, Any]:
    return result.meta or {}


def _scored(result: ScoreResult) -> bool:
    return result.ok and result.score is not None


def _values(result: ScoreResult) -> dict[str, float]:
    assert result.score is not None
    return {"score": result.score, **result.scores}


def metric_names(results: Iterable[ScoreResult]) -> list[str]:
    """``score``, then every sub-score name of ``results`` in first-seen order."""
    names: dict[str, None] = {"score": None}
    for r in results:
        names.update(dict.fromkeys(r.scores))
    return list(names)


def _means(results: Sequence[ScoreResult], names: Sequence[str]) -> dict[str, float]:
    out = {}
    for name in names:
        values = [v[name] for v in map(_values, results) if name in v]
        if values:
            out[name] = statistics.fmean(values)
    return out


def _group(key: dict[str, Any], members: list[ScoreResult], names: Sequence[str]) -> Group:
    scored = [r for r in members if _scored(r)]
    return Group(key, len(scored), len(members) - len(scored), _means(scored, names))


def _macro(groups: Sequence[Group], name: str) -> float | None:
    """The mean of the group means; None when a group has no mean for ``name`` (the reference's
    mean over an empty group is NaN, and so is its headline)."""
    means = [g.mean.get(name) for g in groups]
    if not means or any(m is None for m in means):
        return None
    return statistics.fmean(m for m in means if m is not None)


def _order(keys: Mapping[str, dict[str, Any]]) -> Any:
    def sort_key(label: str) -> tuple[tuple[bool, str], ...]:
        return tuple((v is None, _text(v)) for v in keys[label].values())

    return sort_key
