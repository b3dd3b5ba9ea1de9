"""The HTML report in a real headless Chromium: it renders, sorts, filters, compares, stays offline.

Screenshots are kept in ``test-artifacts/`` (``$EDITJUDGE_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from editjudge.client import ScoreResult
from editjudge.client.cli import main
from tests.client.browser import Watched, launch, open_page, screenshot
from tests.client.report_runs import HOSTILE, Runs, make_runs, picture

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return make_runs(tmp_path_factory.mktemp("report"))


def report(runs: Runs, *extra: str) -> Path:
    out = runs.inputs.parent / f"report{abs(hash(extra))}.html"
    argv = ["report", str(runs.results_a), "--inputs", str(runs.inputs), "--html", str(out)]
    assert main([*argv, *extra]) == 0
    return out


def row_ids(watched: Watched) -> list[str]:
    return list(watched.page.locator("#rows tr").evaluate_all("rs => rs.map(r => r.dataset.id)"))


def images_decoded(watched: Watched) -> list[bool]:
    """For each image in the table: whether the browser decoded it."""
    script = "images => images.map(i => i.naturalWidth > 0)"
    return list(watched.page.eval_on_selector_all("#rows img", script))


def meta(result: ScoreResult | None, field: str) -> Any:
    return None if result is None or result.meta is None else result.meta[field]


def value(result: ScoreResult | None, metric: str = "score") -> float | None:
    if result is None:
        return None
    return result.score if metric == "score" else result.scores.get(metric)


def order(ids: list[str], key: dict[str, float | None], descending: bool = False) -> list[str]:
    """The page's order: by value, ties in input order, items without a value last."""
    sign = -1 if descending else 1
    present = [i for i in ids if key[i] is not None]
    absent = [i for i in ids if key[i] is None]
    return sorted(present, key=lambda i: (sign * key[i], ids.index(i))) + absent  # type: ignore[operator]


def all_ids(runs: Runs) -> list[str]:
    return [json.loads(line)["id"] for line in runs.inputs.read_text().splitlines()]


def test_renders_every_item_with_images_and_no_console_errors(browser: Any, runs: Runs) -> None:
    watched = open_page(browser, report(runs, "--worst", "5"))
    page = watched.page
    ids = all_ids(runs)
    assert row_ids(watched) == ids
    decoded = images_decoded(watched)
    assert len(decoded) == 2 * len(ids) and all(decoded)
    by_id = {r.id: r for r in runs.a}
    worst = order([i for i in ids if i in by_id], {i: value(by_id[i]) for i in by_id})[:5]
    assert page.locator("#worst .card").evaluate_all("cs => cs.map(c => c.dataset.id)") == worst
    missing = page.locator(f'#rows tr[data-id="{runs.missing}"] td.status').inner_text()
    assert missing.strip() == "missing"
    # the judge's text is shown as text: no script ran, no image was requested
    assert page.title() == "run-a.jsonl"
    judge = page.locator('#rows tr[data-id="e001"] td.judge').inner_text()
    assert HOSTILE in judge
    screenshot(watched, "report.png")
    assert watched.problems() == []


def test_sorting_by_score_sub_score_and_meta(browser: Any, runs: Runs) -> None:
    watched = open_page(browser, report(runs))
    page, ids = watched.page, all_ids(runs)
    by_id: dict[str, ScoreResult | None] = {i: None for i in ids} | {r.id: r for r in runs.a}  # type: ignore[misc]
    for metric, header in (("score", "m:0:score"), ("semantics", "m:0:semantics")):
        key = {i: value(by_id[i], metric) for i in ids}
        page.click(f'th[data-key="{header}"]')
        assert row_ids(watched) == order(ids, key)
        assert page.get_attribute(f'th[data-key="{header}"]', "aria-sort") == "ascending"
        page.click(f'th[data-key="{header}"]')
        assert row_ids(watched) == order(ids, key, descending=True)
    difficulty = {i: meta(r, "difficulty") for i, r in by_id.items()}
    page.click('th[data-key="meta:difficulty"]')
    assert row_ids(watched) == order(ids, difficulty)
    assert watched.problems() == []


def test_filters_by_status_range_meta_search_and_histogram(browser: Any, runs: Runs) -> None:
    watched = open_page(browser, report(runs))
    page, ids = watched.page, all_ids(runs)
    by_id = {r.id: r for r in runs.a}
    page.select_option("#f-status-0", "error:unparseable_reply")
    assert row_ids(watched) == [i for i in ids if i in by_id and not by_id[i].ok]
    page.select_option("#f-status-0", "missing")
    assert row_ids(watched) == [runs.missing]
    page.click("#f-reset")
    page.fill('input[data-key="m:0:score"][data-end="min"]', "3")
    page.fill('input[data-key="m:0:score"][data-end="max"]', "6.5")
    in_range = [i for i in ids if i in by_id and 3 <= (value(by_id[i]) or -1) <= 6.5]
    assert row_ids(watched) == in_range and in_range
    page.select_option('select[data-meta="category"]', "style")
    styled = [i for i in in_range if meta(by_id[i], "category") == "style"]
    assert row_ids(watched) == styled
    page.click("#f-reset")
    page.fill("#f-search", "E007")  # case-insensitive, over id, instruction, reasoning, meta
    assert row_ids(watched) == ["e007"]
    page.click("#f-reset")
    # a histogram bar filters to its bin: sub-scores are integers, one bar per value
    semantics = [value(by_id[i], "semantics") for i in ids if i in by_id and by_id[i].ok]
    lowest, target = min(semantics), sorted(semantics)[len(semantics) // 2]  # type: ignore[type-var]
    bars = page.locator('.dist[data-metric="semantics"] rect.bar')
    bars.nth(int(target - lowest)).click()  # type: ignore[operator]
    picked = [i for i in ids if i in by_id and value(by_id[i], "semantics") == target]
    assert row_ids(watched) == picked
    shown = page.locator('.dist[data-metric="semantics"] div').first.inner_text()
    assert shown.startswith(f"n {semantics.count(target)},")
    assert watched.problems() == []


def test_compare_two_runs_deltas_and_movers(browser: Any, runs: Runs) -> None:
    labels = ("--label", "base", "--compare-label", "new")
    watched = open_page(browser, report(runs, "--compare", str(runs.results_b), *labels))
    page, ids = watched.page, all_ids(runs)
    a, b = {r.id: value(r) for r in runs.a}, {r.id: value(r) for r in runs.b}
    delta = {i: b[i] - a[i] if a.get(i) is not None and b.get(i) is not None else None for i in ids}  # type: ignore[operator]
    page.click('th[data-key="d:score"]')
    assert row_ids(watched) == order(ids, delta)
    page.click('th[data-key="d:score"]')
    assert row_ids(watched) == order(ids, delta, descending=True)
    first = page.locator("#rows tr").first.locator("td.num").nth(3).inner_text()
    top = order(ids, delta, descending=True)[0]
    assert math.isclose(float(first.replace("\u2212", "-").replace("+", "")), round(delta[top], 2))  # type: ignore[arg-type]
    magnitude = {i: abs(d) if d else None for i, d in delta.items()}
    movers = page.locator("#movers .card").evaluate_all("cs => cs.map(c => c.dataset.id)")
    assert movers == order(ids, magnitude, descending=True)[:12]
    assert page.locator("#rows tr").first.locator("img").count() == 2  # same inputs: one edit
    screenshot(watched, "report-compare.png")
    page.select_option("#f-status-1", "error:unparseable_reply")
    assert row_ids(watched) == [r.id for r in runs.b if not r.ok]
    assert watched.problems() == []


def test_compare_runs_that_edited_different_images(browser: Any, runs: Runs) -> None:
    other = runs.inputs.parent / "other"
    other.mkdir(exist_ok=True)
    rows = [json.loads(line) for line in runs.inputs.read_text().splitlines()]
    for n, row in enumerate(rows):
        picture(other / f"edit{n}.png", seed=500 + n)
        row["image"] = f"edit{n}.png"
        row["source_image"] = str(runs.inputs.parent / row["source_image"])
    (other / "inputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    extra = ("--compare", str(runs.results_b), "--compare-inputs", str(other / "inputs.jsonl"))
    watched = open_page(browser, report(runs, *extra))
    decoded = images_decoded(watched)
    assert len(decoded) == 3 * len(rows) and all(decoded)  # source | edit A | edit B
    assert watched.problems() == []


def test_detail_view_and_paging_without_inputs(browser: Any, tmp_path: Path) -> None:
    results = [
        ScoreResult(id=f"r{i}", status="ok", score=i % 11, reasoning=f"why {i}") for i in range(130)
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(r.model_dump_json() + "\n" for r in results))
    out = tmp_path / "r.html"
    assert main(["report", str(path), "--html", str(out), "--worst", "3"]) == 0
    watched = open_page(browser, out)
    page = watched.page
    assert len(row_ids(watched)) == 100 and page.locator("#rows img").count() == 0
    page.click("#more")
    assert row_ids(watched) == [f"r{i}" for i in range(130)]
    assert page.locator("#more").is_hidden()
    page.locator("#worst .card").first.click()
    assert page.locator("#overlay").is_visible()
    assert "why 0" in page.locator("#detail").inner_text()
    page.keyboard.press("Escape")
    assert page.locator("#overlay").is_hidden()
    assert watched.problems() == []


def test_the_page_cannot_load_anything_even_if_markup_got_in(browser: Any, runs: Runs) -> None:
    watched = open_page(browser, report(runs))
    watched.page.evaluate(
        "() => { const i = document.createElement('img'); i.src = 'http://127.0.0.1:9/x.png';"
        " document.body.append(i); const s = document.createElement('script');"
        " s.textContent = 'document.title = 1'; document.body.append(s); }"
    )
    watched.page.wait_for_timeout(300)
    assert watched.page.title() == "run-a.jsonl"  # the injected script did not run
    blocked = [m for m in watched.console if "Content Security Policy" in m]
    assert len(blocked) == 2 and "inline script" in blocked[0], watched.console
    assert "http://127.0.0.1:9/x.png" in blocked[1]
    # the image's request was refused before it left the browser
    assert "failed: http://127.0.0.1:9/x.png csp" in watched.console
