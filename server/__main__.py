"""``python -m editjudge.server`` (or ``editjudge router``): run the router with settings from
``EDITJUDGE_*`` variables.

``python -m server`` from a checkout still works for one release, with a deprecation warning.
"""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from types import FrameType

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from .app import SERVING_OPTIONS, create_app
from .catalog import check_protocols
from .config import Settings
from .protocols import TemplateError


def run(settings: Settings) -> None:
    """Serve the router until SIGINT/SIGTERM.

    On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (at most 30 s),
    runs the lifespan shutdown, and the process exits with status 0.
    """
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.log_level.lower() != "debug":
        # httpx logs each request at INFO: with EDITJUDGE_HTTP_CLIENT=httpx, every health probe.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if not settings.backends and settings.discovery == "static":
        logging.getLogger("editjudge").warning(
            "EDITJUDGE_BACKENDS is empty: the router will answer 503 until backends are set"
        )
    # uvicorn drains on SIGTERM, then re-raises the signal for the handler it found installed; with
    # the default one the process would die of SIGTERM after a clean drain. Ours exits with 0.
    signal.signal(signal.SIGTERM, _exit_after_drain)
    # Several workers need an import string: each process builds its app from the environment.
    workers = settings.workers
    factory = f"{__package__}.app:create_app"  # the name this package was imported under
    app: FastAPI | str = create_app(settings) if workers == 1 else factory
    uvicorn.run(
        app,
        factory=workers > 1,
        workers=workers,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
        **SERVING_OPTIONS,
    )


def _exit_after_drain(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def describe_config_error(exc: ValidationError) -> str:
    """The problems, without the offending values: those may include API keys."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        field = "_".join(str(p) for p in err["loc"]).upper()
        where = f"EDITJUDGE_{field}" if field else "settings"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m editjudge.server`` and ``editjudge router`` (env settings)."""
    if argv and argv[0] in ("-h", "--help"):
        print(
            "usage: editjudge router\n\nConfigure with EDITJUDGE_* environment variables;"
            " see the README's configuration table."
        )
        return 0
    try:
        settings = Settings()
    except ValidationError as exc:
        sys.stderr.write(f"editjudge: invalid configuration:\n{describe_config_error(exc)}\n")
        return 2
    try:  # fail before serving: a broken template or unknown default protocol stops the router
        check_protocols(settings)
    except (TemplateError, ValueError) as exc:
        sys.stderr.write(f"editjudge: cannot start: {exc}\n")
        return 2
    run(settings)
    return 0


def _warn_old_name() -> None:
    if __package__ == "server":
        message = (
            "'python -m server' is deprecated and will be removed in the next release; "
            "use 'python -m editjudge.server' or 'editjudge router'"
        )
        # Raised from __main__, so Python shows it by default.
        warnings.warn(message, DeprecationWarning, stacklevel=1)


if __name__ == "__main__":
    _warn_old_name()
    sys.exit(main())
