"""The HTML report's data and page, without a browser: what is embedded, and what is not."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from editjudge.client import ScoreResult
from editjudge.client._html_report import ReportOptions, Run, build, render
from editjudge.client._inputs import read_items
from editjudge.client._results import ResultFileError, read_results
from editjudge.client._thumbnails import Thumbnails
from editjudge.client.cli import main
from tests.client.report_runs import HOSTILE, make_runs, picture


def embedded(page: str) -> dict:  # type: ignore[type-arg]
    found = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S
    )
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_data_has_every_item_once_with_shared_images_once(tmp_path: Path) -> None:
    runs = make_runs(tmp_path)
    data = build([Run("a", "run-a.jsonl", runs.a, read_items(runs.inputs))], ReportOptions(worst=4))
    rows = data["items"]
    assert [r["id"] for r in rows] == [f"e{i:03d}" for i in range(30)]
    assert len(data["images"]) == 40 and all(
        u.startswith("data:image/jpeg;base64,") for u in data["images"]
    )
    assert rows[0]["src"] == rows[10]["src"] != rows[0]["edit"]  # ten shared sources
    assert data["metrics"] == ["score", "semantics", "quality"]
    assert data["meta"] == ["category", "difficulty"] and rows[1]["meta"] == {
        "category": "object",
        "difficulty": 2.0,
    }
    assert rows[-1]["runs"] == [None]  # in the inputs, not in the results
    failed = rows[4]["runs"][0]
    assert failed["status"] == "error" and failed["error"]["code"] == "unparseable_reply"
    assert failed["raw"] == "I like it"  # an error keeps the judge's reply for the reader
    assert "raw" not in rows[0]["runs"][0]
    assert (
        data["runs"][0]["fingerprint"]["model"] == "judge-vl"
        and data["runs"][0]["fingerprints"] == 1
    )
    for row in rows[:3]:
        thumb = Image.open(
            io.BytesIO(base64.b64decode(data["images"][row["edit"]].partition(",")[2]))
        )
        assert max(thumb.size) == 256 and thumb.size == (256, 192)


def test_compare_keeps_ids_of_both_runs_and_the_second_edit_only_if_it_differs(
    tmp_path: Path,
) -> None:
    runs = make_runs(tmp_path)
    items = read_items(runs.inputs)
    same = build([Run("a", "a", runs.a, items), Run("b", "b", runs.b, items)], ReportOptions())
    assert all("edit_b" not in r for r in same["items"])
    assert same["items"][-1]["runs"][0] is None and same["items"][-1]["runs"][1]["status"] == "ok"
    extra = ScoreResult(id="only-in-b", status="ok", score=3.0)
    moved = tmp_path / "moved"  # the second run edited the same rows into other images
    moved.mkdir()
    rows = []
    for n, item in enumerate(items):
        picture(moved / f"e{n}.png", seed=900 + n)
        rows.append({"id": item.id, "image": f"e{n}.png", "instruction": item.instruction})
    (moved / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = Run("b", "b", [*runs.b, extra], read_items(moved / "in.jsonl"))
    data = build([Run("a", "a", runs.a, items), second], ReportOptions())
    assert all(r["edit_b"] is not None and r["edit_b"] != r["edit"] for r in data["items"][:30])
    assert data["items"][-1]["id"] == "only-in-b" and data["items"][-1]["runs"][0] is None


def test_page_policy_allows_only_its_own_script_and_style_and_data_images(tmp_path: Path) -> None:
    runs = make_runs(tmp_path, n=6)
    page = render(
        build([Run("a", "a", runs.a, read_items(runs.inputs))], ReportOptions(title="<b>t</b>"))
    )
    parser = Tags()
    parser.feed(page)
    policy = next(a["content"] for t, a in parser.tags if t == "meta" and a.get("http-equiv"))
    assert policy is not None
    script = re.findall(r"<script>(.*?)</script>", page, re.S)
    style = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert len(script) == len(style) == 1
    for text, directive in ((script[0], "script-src"), (style[0], "style-src")):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy and "img-src data:" in policy
    assert "unsafe-inline" not in policy and "http" not in policy
    # no markup refers to anything outside the file
    assert not [a for _, attrs in parser.tags for k, a in attrs.items() if k in ("src", "href")]
    assert "<title>&lt;b&gt;t&lt;/b&gt;</title>" in page
    # the hostile reasoning cannot close the data block; it survives as text in the data
    assert page.count("</script>") == 2
    assert any(
        HOSTILE in (r["runs"][0] or {}).get("reasoning", "") for r in embedded(page)["items"]
    )


def test_read_results_tolerates_a_cut_last_line_and_names_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    first = ScoreResult(id="a", status="ok", score=1.0).model_dump_json()
    again = ScoreResult(id="a", status="ok", score=2.0).model_dump_json()
    second = ScoreResult(id="b", status="ok", score=5.0).model_dump_json()
    path.write_text(f"{first}\n{second}\n\n{again}\n{second[:20]}")
    results = read_results(path)
    assert [(r.id, r.score) for r in results] == [("a", 2.0), ("b", 5.0)]
    assert path.read_text().endswith(second[:20])  # read only: nothing repaired
    path.write_text(f"{first}\nnot json\n{second}\n")
    with pytest.raises(ResultFileError, match=r"r\.jsonl:2 "):
        read_results(path)


def test_thumbnails_of_unusual_files(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (640, 100), (0, 0, 0, 0))
    rgba.save(tmp_path / "clear.png")
    rotated = Image.new("RGB", (320, 80), (10, 20, 30))
    exif = rotated.getexif()
    exif[0x0112] = 6  # shown rotated by 90 degrees
    rotated.save(tmp_path / "rotated.jpg", exif=exif)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    thumbs = Thumbnails(max_side=64)
    indices = [
        thumbs.add(tmp_path / n) for n in ("clear.png", "rotated.jpg", "junk.png", "gone.png")
    ]
    assert thumbs.add(tmp_path / "." / "clear.png") == indices[0] == 0
    clear, upright, junk, gone = thumbs.render(workers=2)
    image = Image.open(io.BytesIO(base64.b64decode(clear.url.partition(",")[2])))  # type: ignore[union-attr]
    assert image.size == (64, 10) and image.convert("RGB").getpixel((5, 5)) == (255, 255, 255)
    upright_image = Image.open(io.BytesIO(base64.b64decode(upright.url.partition(",")[2])))  # type: ignore[union-attr]
    assert upright_image.size == (16, 64)
    assert junk.url is None and "junk.png" in (junk.problem or "")
    assert gone.url is None and "not found" in (gone.problem or "")


def test_cli_usage_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = make_runs(tmp_path, n=3)
    cases = [
        (["report", str(tmp_path / "nope.jsonl"), "--html", "x.html"], "results file not found"),
        # the HTML page's own options without --html: the table mode cannot use them
        (["report", str(runs.results_a), "--inputs", str(runs.inputs)], "add --html"),
        (
            ["report", str(runs.results_a), "--html", "o.html", "--compare-inputs", "i"],
            "needs --compare",
        ),
        (
            ["report", str(runs.results_a), "--html", "o.html", "--inputs", "nope.jsonl"],
            "input file not found",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(runs.results_a), "--html", "o.html", "--thumb-size", "4"])
    assert exit_info.value.code == 2


def test_cli_writes_a_report_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = make_runs(tmp_path, n=5)
    out = tmp_path / "deep" / "r.html"
    argv = ["report", str(runs.results_a), "--inputs", str(runs.inputs), "--html", str(out)]
    assert main([*argv, "--worst", "2", "--thumb-size", "64", "--title", "My run"]) == 0
    data = embedded(out.read_text())
    assert data["title"] == "My run" and data["worst"] == 2 and len(data["items"]) == 5
    assert "report written to" in capsys.readouterr().err
