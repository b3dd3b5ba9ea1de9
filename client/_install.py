"""How to install editjudge or one of its extras, for the hints in messages.

editjudge is not on PyPI yet, so ``pip install editjudge`` cannot work: the hints name what does,
a checkout or a wheel built from one.
"""

from __future__ import annotations

import importlib.metadata

BUILD_WHEEL = "pip wheel --no-deps -w dist ."


def wheel_name() -> str:
    """The file name ``pip wheel`` gives this version of editjudge."""
    try:
        version = importlib.metadata.version("editjudge")
    except importlib.metadata.PackageNotFoundError:
        version = "<version>"
    return f"editjudge-{version}-py3-none-any.whl"


def install_hint(extra: str | None = None) -> str:
    """One line: how to install editjudge (with ``extra``) from a checkout or a built wheel."""
    if extra is None:
        return (
            f"from a checkout: pip install -e .; or build a wheel ({BUILD_WHEEL}) and "
            f"pip install dist/{wheel_name()}"
        )
    return (
        f"from a checkout: pip install -e '.[{extra}]'; or build a wheel ({BUILD_WHEEL}) and "
        f"pip install 'dist/{wheel_name()}[{extra}]'"
    )
