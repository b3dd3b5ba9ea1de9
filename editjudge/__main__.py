"""``python -m editjudge``: the ``editjudge`` command."""

from __future__ import annotations

import sys

from editjudge.client.cli import main

sys.exit(main())
