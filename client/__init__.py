"""editjudge client: score image edits against an editjudge router (filled in by the client SDK)."""

from __future__ import annotations
