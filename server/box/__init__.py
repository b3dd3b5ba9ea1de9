"""The GPU box's tooling: the bare-metal launcher (``editjudge serve``), host placement (which
cores and thread budgets each engine gets) and the compose generator (``editjudge compose``).

It builds on the router core (:mod:`editjudge.server`); the core never imports it.
"""
