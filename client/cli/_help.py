"""Help texts that show every option's default, and the argument types the commands share."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

_SAYS_IT = re.compile(r"\b(default|required)\b", re.IGNORECASE)


class ShowDefaults(argparse.HelpFormatter):
    """Ends each option's help with its default: ``(default: 16)``, ``(default: off)`` for a flag,
    ``(required)``. A help text that already speaks of its default (because the value alone would
    mislead, e.g. "sized from the router's engines") is left as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        if _SAYS_IT.search(text):
            return text
        if action.required:
            return f"{text} (required)"
        if action.nargs == 0 and isinstance(action.default, bool):
            return f"{text} (default: {'on' if action.default else 'off'})"
        if action.default is None:
            return f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


def at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``low``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    return parse


positive = at_least(1)
non_negative = at_least(0)
