"""The wheel as users get it: one top-level package, everything importable from it, and a client
that installs alone, without the server's dependencies."""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from editjudge.server.testing import LocalRouter
from tests.helpers import image_bytes

REPO = Path(__file__).resolve().parents[2]
# The repository folders the wheel maps into the package (pyproject.toml, hatch sources).
MAPPED = {"editjudge": "editjudge", "client": "editjudge/client", "server": "editjudge/server"}


def run(*argv: str | Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )
    if check:
        assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # The project's own backend (hatchling, a dev dependency): no download, no isolated env.
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        out,
        REPO,
        cwd=out,
    )
    (built,) = out.glob("editjudge-*-py3-none-any.whl")
    return built


def source_files() -> Iterator[tuple[Path, str]]:
    """Each file of the mapped folders, with the path it must have in the wheel."""
    for folder, target in MAPPED.items():
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield path, f"{target}/{path.relative_to(REPO / folder).as_posix()}"


def test_the_wheel_holds_one_top_level_package_with_every_file(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    version = wheel.name.split("-")[1]
    assert {n.split("/")[0] for n in names} == {"editjudge", f"editjudge-{version}.dist-info"}
    expected = {target for _, target in source_files()}
    assert expected <= set(names), sorted(expected - set(names))
    packaged = {n for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packaged == expected, sorted(packaged - expected)  # nothing else: no tests, no bench
    assert {"editjudge/py.typed", "editjudge/server/testing/__init__.py"} <= packaged
    entry_points = zipfile.ZipFile(wheel).read(f"editjudge-{version}.dist-info/entry_points.txt")
    assert "editjudge = editjudge.client.cli:main" in entry_points.decode()


def test_every_module_imports_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # This venv has the server extra; the wheel's copy must win over the editable checkout.
    code = f"""
import importlib, pkgutil, sys
sys.path.insert(0, {str(site)!r})
import editjudge
names = [m.name for m in pkgutil.walk_packages(editjudge.__path__, "editjudge.")]
for name in names:
    if not name.endswith("__main__"):  # those run a command when imported
        module = importlib.import_module(name)
        assert module.__file__.startswith({str(site)!r}), (name, module.__file__)
print(len(names), sorted(n for n in names if n.count(".") == 1))
"""
    done = run(sys.executable, "-c", code, cwd=tmp_path)
    count, top = done.stdout.split(" ", 1)
    assert int(count) >= 50, done.stdout
    assert top.strip() == "['editjudge.__main__', 'editjudge.client', 'editjudge.server']"


def server_requirements(wheel: Path) -> list[str]:
    """Distribution names of the ``server`` extra, from the wheel's own metadata."""
    version = wheel.name.split("-")[1]
    raw = zipfile.ZipFile(wheel).read(f"editjudge-{version}.dist-info/METADATA").decode()
    requires = email.message_from_string(raw).get_all("Requires-Dist") or []
    server = [r for r in requires if re.search(r"extra\s*==\s*['\"]server['\"]", r)]
    return [re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0] for r in server]


def test_the_client_installs_alone_and_works(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python, editjudge = venv / "bin" / "python", venv / "bin" / "editjudge"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel, cwd=tmp_path)

    missing = server_requirements(wheel)
    assert {"fastapi", "uvicorn", "aiohttp", "pydantic-settings"} <= set(missing)
    code = f"""
import importlib.metadata, importlib.util
import editjudge
from editjudge import AsyncClient, Client
assert editjudge.__file__.startswith({str(venv)!r}), editjudge.__file__
for dist in {missing!r}:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        continue
    raise SystemExit(f"the server extra's {{dist}} came along")
for module in ("fastapi", "uvicorn", "aiohttp", "pydantic_settings", "starlette", "matplotlib"):
    assert importlib.util.find_spec(module) is None, module
print("ok", editjudge.__version__)
"""
    assert run(python, "-c", code, cwd=tmp_path).stdout.startswith("ok ")

    helped = run(editjudge, "--help", cwd=tmp_path)
    for command in ("score", "demo", "router", "serve", "compose", "fake-engine"):
        assert command in helped.stdout
    assert run(python, "-m", "editjudge", "score", "--help", cwd=tmp_path).stdout.startswith(
        "usage: editjudge score"
    )
    for command in ("router", "demo"):
        refused = run(editjudge, command, cwd=tmp_path, check=False)
        assert refused.returncode == 2 and "server extra" in refused.stderr, refused.stderr
        assert "pip install -e '.[server]'" in refused.stderr and "Traceback" not in refused.stderr

    # and it scores, against a router served from this (server-extra) environment
    (tmp_path / "edit.png").write_bytes(image_bytes())
    (tmp_path / "items.jsonl").write_text('{"id": "a", "image": "edit.png", "instruction": "x"}\n')
    with LocalRouter(1) as box:
        scored = run(
            editjudge, "score", "items.jsonl", "-o", "out.jsonl", "--server", box.url, cwd=tmp_path
        )
    assert "1 results: 1 ok, 0 error" in scored.stdout, scored.stderr
