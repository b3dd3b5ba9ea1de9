"""The CLI's files: reading JSONL/CSV input, and the resumable, crash-safe output log."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from editjudge.client import ScoreResult
from editjudge.client._inputs import InputFileError, missing_files, read_items
from editjudge.client._results import ResultFileError, ResultLog
from tests.helpers import image_bytes


def _images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.png").write_bytes(image_bytes())
    (folder / "b.png").write_bytes(image_bytes((1, 2, 3)))


def test_jsonl_rows_with_relative_paths_and_default_ids(tmp_path: Path) -> None:
    _images(tmp_path / "imgs")
    rows = [
        {"id": "e1", "image": "imgs/a.png", "source_image": "imgs/b.png", "instruction": "hat"},
        {"image": str(tmp_path / "imgs/b.png"), "instruction": "no source, no id"},
        {"id": 7, "image": "imgs/a.png", "instruction": "numeric id", "protocol": "viescore"},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    items = read_items(path)
    assert [i.id for i in items] == ["e1", "1", "7"]
    assert items[0].image == tmp_path / "imgs/a.png"
    assert items[0].source_image == tmp_path / "imgs/b.png"
    assert items[1].source_image is None and items[2].protocol == "viescore"


def test_csv_rows(tmp_path: Path) -> None:
    _images(tmp_path)
    path = tmp_path / "in.csv"
    path.write_text(
        "id,image,source_image,instruction,notes\n"
        'x,a.png,b.png,"make it blue, please",whatever\n'
        "y,b.png,,remove the dog,\n"
    )
    items = read_items(path)
    assert [(i.id, i.instruction) for i in items] == [
        ("x", "make it blue, please"),
        ("y", "remove the dog"),
    ]
    assert items[0].source_image == tmp_path / "b.png" and items[1].source_image is None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("in.jsonl", '{"id": "a", "image": "a.png"}\n', "in.jsonl:1: 'instruction'"),
        ("in.jsonl", '{"id": "a", "instruction": "x"}\n', "in.jsonl:1: 'image'"),
        ("in.jsonl", '{"id": "a", "image": "a.png", "instruction": "x"}\n[1]\n', "in.jsonl:2"),
        ("in.jsonl", "{not json\n", "in.jsonl:1: not valid JSON"),
        (
            "in.jsonl",
            '{"id": "a", "image": "a.png", "instruction": "x"}\n'
            '{"id": "a", "image": "a.png", "instruction": "y"}\n',
            "duplicate id 'a'",
        ),
        ("in.csv", "id,image\na,a.png\n", "lacks column(s): instruction"),
    ],
)
def test_input_problems_are_one_line_errors(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    _images(tmp_path)
    (tmp_path / name).write_text(content)
    with pytest.raises(InputFileError) as info:
        read_items(tmp_path / name)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_image_files_are_not_input_file_errors(tmp_path: Path) -> None:
    # A missing image is the row's problem, not the file's: it becomes an error result later.
    _images(tmp_path)
    rows = [
        {"id": "ok", "image": "a.png", "source_image": "b.png", "instruction": "x"},
        {"id": "gone", "image": "nope.png", "instruction": "x"},
        {"id": "no-src", "image": "a.png", "source_image": "sub/nope.jpg", "instruction": "x"},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = read_items(path)
    assert [i.id for i in items] == ["ok", "gone", "no-src"]
    assert missing_files(items) == [
        ("gone", tmp_path / "nope.png"),
        ("no-src", tmp_path / "sub/nope.jpg"),
    ]


def test_missing_input_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="input file not found"):
        read_items(tmp_path / "absent.jsonl")


def _result(i: int) -> ScoreResult:
    return ScoreResult(id=f"id-{i}", status="ok", score=float(i), scores={"a": 1.0})


def test_log_appends_flushed_lines_and_reads_them_back(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.jsonl"
    with ResultLog(out) as log:
        assert log.saved == {}
        log.append(_result(1))
        # flushed at once: another reader sees the line while the log is still open
        assert json.loads(out.read_text())["id"] == "id-1"
        log.append(_result(2))
    with ResultLog(out) as log:
        assert set(log.saved) == {"id-1", "id-2"} and log.saved["id-2"].score == 2.0
        assert not log.repaired


def test_the_last_line_for_an_id_supersedes_earlier_ones(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    failed = ScoreResult.failed("id-1", "file_not_found", "image not found: a.png")
    with ResultLog(out) as log:
        log.append(failed)
        log.append(_result(2))
        log.append(_result(1))  # --retry-errors: the new result is appended, the old line stays
        assert log.saved["id-1"].ok
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["id-1", "id-2", "id-1"]
    with ResultLog(out) as log:
        assert log.saved["id-1"].ok and log.saved["id-1"].score == 1.0 and len(log.saved) == 2
    out.write_text(out.read_text() + failed.model_dump_json() + "\n")  # and back again
    with ResultLog(out) as log:
        assert not log.saved["id-1"].ok


def test_torn_last_line_is_cut_off_and_appends_stay_clean(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    whole = _result(1).model_dump_json() + "\n"
    out.write_text(whole + _result(2).model_dump_json()[:25])  # crash mid-write
    with ResultLog(out) as log:
        assert log.repaired and set(log.saved) == {"id-1"}
        log.append(_result(2))
    lines = out.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["id-1", "id-2"]


def test_whole_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(_result(1).model_dump_json())
    with ResultLog(out) as log:
        assert not log.repaired and set(log.saved) == {"id-1"}
        log.append(_result(2))
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["id-1", "id-2"]


def test_damage_in_the_middle_is_refused_not_guessed(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(_result(1).model_dump_json() + "\ngarbage\n" + _result(2).model_dump_json())
    with pytest.raises(ResultFileError, match=r"out\.jsonl:2 is not a result line"):
        ResultLog(out).__enter__()
    assert "garbage" in out.read_text()  # left as it was


def test_two_runs_cannot_append_to_one_file(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with ResultLog(out), pytest.raises(ResultFileError, match="in use"):
        ResultLog(out).__enter__()
    with ResultLog(out):  # released on close
        pass


def test_a_failed_write_is_a_clear_error_and_not_counted(tmp_path: Path) -> None:
    import errno

    from editjudge.client import EditJudgeError

    class FullDisk(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    with ResultLog(tmp_path / "out.jsonl") as log:
        real, log._fh = log._fh, FullDisk()
        with pytest.raises(EditJudgeError, match="No space left on device"):
            log.append(_result(1))
        log._fh = real
        assert log.written == 0 and "id-1" not in log.saved
