"""``meta`` from input columns to results, and ``editjudge report``'s GEdit-style aggregation."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from editjudge.client import ScoreResult
from editjudge.client._aggregate import aggregate, matches
from editjudge.client._inputs import InputFileError, read_items
from editjudge.client._results import ResultFileError, read_results
from tests.client.servers import LoopbackRouter
from tests.client.test_cli import run
from tests.helpers import image_bytes

_IDS = itertools.count()


def ok(sc: float, pq: float, **meta: Any) -> ScoreResult:
    return ScoreResult(
        id=str(meta.pop("id", next(_IDS))),
        status="ok",
        score=math.sqrt(sc * pq),
        scores={"semantic_consistency": sc, "perceptual_quality": pq},
        meta=meta,
    )


def error(**meta: Any) -> ScoreResult:
    return ScoreResult.failed(str(next(_IDS)), "unparseable_reply", "no score", meta)


# Two task types of unequal size: the macro mean (of group means) and the overall mean differ.
RESULTS = [
    ok(8, 6, task="add", lang="en", inter=True),
    ok(4, 9, task="add", lang="en", inter=False),
    ok(2, 2, task="add", lang="zh", inter=True),
    ok(10, 10, task="remove", lang="en", inter="True"),  # a CSV cell
    error(task="remove", lang="en", inter=True),
    error(task="remove", lang="en", inter=False),
]


def test_group_means_macro_and_overall_as_gedit_reports_them() -> None:
    report = aggregate(RESULTS, ["task"], {"lang": "en"})
    add, remove = report.groups
    assert (add.key, add.n, add.errors) == ({"task": "add"}, 2, 0)
    assert (remove.key, remove.n, remove.errors) == ({"task": "remove"}, 1, 2)
    assert add.mean["semantic_consistency"] == 6 and add.mean["perceptual_quality"] == 7.5
    assert add.mean["score"] == pytest.approx((math.sqrt(48) + 6) / 2)
    assert report.macro["semantic_consistency"] == pytest.approx((6 + 10) / 2)
    assert report.overall["semantic_consistency"] == pytest.approx((8 + 4 + 10) / 3)
    assert (report.n, report.errors) == (3, 2)
    assert report.metrics == ["score", "semantic_consistency", "perceptual_quality"]


def test_subsets_match_json_booleans_and_csv_text_alike() -> None:
    report = aggregate(RESULTS, ["task"], {"lang": "en", "inter": "true"})
    assert [(g.key["task"], g.n, g.errors) for g in report.groups] == [
        ("add", 1, 0),
        ("remove", 1, 1),
    ]
    assert matches(True, "True") and matches("False", "false") and matches(3, "3")
    assert not matches(None, "") and not matches("en", "EN") and not matches(True, "1")


def test_without_by_one_group_and_macro_is_overall() -> None:
    report = aggregate(RESULTS)
    (only,) = report.groups
    assert only.key == {} and only.n == 4 and only.errors == 2
    assert report.macro == pytest.approx(report.overall)


def test_missing_fields_group_together_and_empty_groups_leave_macro_empty() -> None:
    results = [ok(5, 5, task="add"), ok(7, 7), error(task="remove")]
    report = aggregate(results, ["task"])
    assert [g.key["task"] for g in report.groups] == ["add", "remove", None]
    assert report.groups[1].mean == {}  # only errors: nothing averaged
    assert report.macro["score"] is None  # the reference's mean of an empty group is NaN
    assert report.overall["score"] == pytest.approx(6.0)
    assert aggregate(results, ["task"], metrics=["score"]).metrics == ["score"]


def test_results_file_keeps_the_last_line_per_id_and_skips_a_cut_last_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    first = ok(1, 1, id="a").model_dump_json()
    second = ok(9, 9, id="a").model_dump_json()
    path.write_text(f"{first}\n{second}\n{ok(4, 4, id='b').model_dump_json()}\n" + second[:30])
    results = read_results(path)
    assert [(r.id, r.score) for r in results] == [("a", 9.0), ("b", 4.0)]
    path.write_text(f"{first}\nnot json\n{second}\n")
    with pytest.raises(ResultFileError, match=r"r\.jsonl:2"):
        read_results(path)


def test_extra_input_columns_become_meta(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(image_bytes())
    jsonl = tmp_path / "in.jsonl"
    row = {"id": "k", "image": "a.png", "instruction": "x", "protocol": "gedit"}
    extra = {"task_type": "color_alter", "intersection_exist": True, "n": 3}
    jsonl.write_text(json.dumps({**row, **extra}) + "\n" + json.dumps({**row, "id": "j"}) + "\n")
    first, second = read_items(jsonl)
    assert first.meta == extra and first.protocol == "gedit" and second.meta is None
    table = tmp_path / "in.csv"
    table.write_text(
        "id,image,instruction,task_type,intersection_exist,note\nk,a.png,x,add,True,\n"
    )
    (item,) = read_items(table)
    assert item.meta == {"task_type": "add", "intersection_exist": "True"}  # empty cells dropped
    jsonl.write_text(json.dumps({**row, "blob": "x" * 5000}) + "\n")
    with pytest.raises(InputFileError, match=r"in.jsonl:1: the extra columns \(blob\)"):
        read_items(jsonl)


def test_meta_travels_from_the_input_file_to_the_results_and_the_report(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(image_bytes())
    (tmp_path / "s.png").write_bytes(image_bytes((1, 2, 3)))
    rows = [
        {
            "id": f"i{k}",
            "image": "a.png",
            "source_image": "s.png",
            "instruction": f"make {k} blue",
            "task_type": ["add", "remove"][k % 2],
            "lang": "en",
        }
        for k in range(6)
    ]
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "results.jsonl"
    with LoopbackRouter(1) as router:
        done = run("score", str(items), "-o", str(out), "--server", router.url)
    assert done.returncode == 0, done.stderr
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert results["i3"]["meta"] == {"task_type": "remove", "lang": "en"}

    as_json = run(
        "report", str(out), "--by", "task_type", "--subset", "lang=en", "--format", "json"
    )
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert [g["key"] for g in report["groups"]] == [{"task_type": "add"}, {"task_type": "remove"}]
    assert [g["n"] for g in report["groups"]] == [3, 3]
    scores = [results[f"i{k}"]["score"] for k in range(6)]
    adds, removes = scores[0::2], scores[1::2]
    assert report["groups"][0]["mean"]["score"] == pytest.approx(statistics.fmean(adds))
    assert report["macro"]["score"] == pytest.approx(
        (statistics.fmean(adds) + statistics.fmean(removes)) / 2
    )
    assert set(report) >= {"by", "groups", "macro", "overall"}

    markdown = run("report", str(out), "--by", "task_type")
    assert markdown.returncode == 0 and "| **macro** |" in markdown.stdout
    assert "|  | add | 3 | 0 |" in markdown.stdout
    table = run("report", str(out), "--by", "task_type", "--format", "csv", "--metrics", "score")
    rows_out = list(csv.reader(io.StringIO(table.stdout)))
    assert rows_out[0] == ["row", "task_type", "n", "errors", "score"]
    assert [r[0] for r in rows_out[1:]] == ["group", "group", "macro", "overall"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["missing.jsonl"], "results file not found"),
        (["{out}", "--subset", "lang"], "FIELD=VALUE"),
        (["{out}", "--format", "xml"], "invalid choice"),
    ],
)
def test_report_usage_errors_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text(ok(1, 1, id="a").model_dump_json() + "\n")
    done = run("report", *(a.format(out=out) for a in args))
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr
