from __future__ import annotations

import os

# Tests must never read a developer's own EDITJUDGE_* configuration.
for _name in [n for n in os.environ if n.startswith("EDITJUDGE_")]:
    del os.environ[_name]
