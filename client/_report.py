"""What the CLI shows at the end: a summary table and, on request, a histogram PNG."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ._exceptions import EditJudgeError
from ._install import install_hint
from ._models import ScoreResult

PLOT_HINT = (
    f"--plot needs matplotlib (pip install matplotlib), the plot extra: {install_hint('plot')}"
)


def metric_values(results: Sequence[ScoreResult]) -> dict[str, list[float]]:
    """``score`` and every sub-score of the ok results, in first-seen order."""
    values: dict[str, list[float]] = {"score": []}
    for r in results:
        if not r.ok or r.score is None:
            continue
        values["score"].append(r.score)
        for name, value in r.scores.items():
            values.setdefault(name, []).append(value)
    return values


def summary_table(results: Sequence[ScoreResult]) -> Table:
    ok = sum(r.ok for r in results)
    codes = Counter(r.error.code if r.error else "unknown" for r in results if not r.ok)
    errors = ", ".join(f"{code} {n}" for code, n in codes.most_common(3))
    title = f"{len(results)} results: {ok} ok, {len(results) - ok} error"
    table = Table(title=title + (f" ({errors})" if errors else ""), title_justify="left")
    for column in ("metric", "n", "mean", "median", "min", "max"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, values in metric_values(results).items():
        if not values:
            continue
        table.add_row(
            name,
            str(len(values)),
            f"{statistics.fmean(values):.3f}",
            f"{statistics.median(values):.3f}",
            f"{min(values):.3f}",
            f"{max(values):.3f}",
        )
    return table


def print_summary(results: Sequence[ScoreResult], console: Console) -> None:
    console.print(summary_table(results))


def plot_available() -> bool:
    try:
        import matplotlib  # noqa: F401  (a real import: a broken install counts as missing)
    except ImportError:
        return False
    return True


def write_histogram(results: Sequence[ScoreResult], path: Path) -> int:
    """Histograms of ``score`` and each sub-score (0-10, half-point bins); returns panels drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt
    except ImportError:
        raise EditJudgeError(PLOT_HINT) from None
    metrics = {k: v for k, v in metric_values(results).items() if v}
    if not metrics:
        return 0
    columns = min(3, len(metrics))
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    bins = [i / 2 for i in range(21)]
    for ax, (name, values) in zip(axes.flat, metrics.items(), strict=False):
        ax.hist(values, bins=bins, color="#4c72b0" if name == "score" else "#8c8c8c")
        ax.set_title(f"{name} (n={len(values)}, mean={statistics.fmean(values):.2f})")
        ax.set_xlim(0, 10)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise EditJudgeError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)
    return len(metrics)
