"""Router settings priced on the same engines, one after another (issue 17): the ``routers`` phase.

A router setting such as ``EDITJUDGE_CONSTRAIN_REPLIES=false`` or ``EDITJUDGE_REASONING=false``
changes what every engine call asks for, not how the engine runs, so it needs no engine of its
own: after the user path, a second ``editjudge router`` with the arm's settings (and nothing else
changed) is put in front of the launcher's engines, and ``editjudge score`` with its defaults
scores ``--one-engine-pairs`` x N fresh pairs through it. The arm ``default`` (no setting) goes
first, so that every arm is compared with a router of the same kind on the same engines in the
same call. This is how one GPU, where ``levers`` (one arm per GPU, at once) cannot pair arms,
prices a router setting: each arm's items/s, what parsed, GPU busy %, vLLM's step counters and,
with ``--profile``, py-spy's top frames of the engine core.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import spy
from bench.levers import Arm
from bench.measure import measure
from bench.procs import Server, free_port, log, serving_router
from bench.report import Recorder

PREFIX = "arm-"


def arms(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """Arm name -> router settings, ``default`` (none) first."""
    out: dict[str, dict[str, str]] = {"default": {}}
    for spec in args.router_arm:
        arm = Arm.parse(spec)
        if not arm.name or arm.serve_options or arm.engine_args:
            raise SystemExit(f"--router-arm {spec!r}: NAME=EDITJUDGE_X=V, router settings only")
        out[arm.name] = arm.router_env
    return out


def pair_sets(args: argparse.Namespace, gpus: int) -> dict[str, tuple[int, int]]:
    """Name -> (first pair, pairs) of each arm's run; disjoint from the user path's ranges."""
    count = gpus * args.one_engine_pairs
    return {f"{PREFIX}{name}": (400_000 + 50_000 * k, count) for k, name in enumerate(arms(args))}


def phase_routers(
    args: argparse.Namespace,
    serve: Server,
    engines: list[str],
    inputs: dict[str, Any],
    rec: Recorder,
) -> None:
    """Each arm's router in front of every engine of ``serve``, scored one arm after another."""
    for name, env in arms(args).items():
        rec.add(_one_arm(args, serve, engines, inputs, name, env))


def _one_arm(
    args: argparse.Namespace,
    serve: Server,
    engines: list[str],
    inputs: dict[str, Any],
    name: str,
    env: dict[str, str],
) -> dict[str, Any]:
    tag = f"{PREFIX}{name}"
    facts = {"kind": "router_arm", "image_side": args.image_side, "client": "editjudge score"}
    with (
        serving_router(engines, free_port(), env, args.work / f"router-{tag}.log") as url,
        spy.during(serve, args.work, tag, args.profile_after_s, args.profile) as frames,
    ):
        run = measure(
            args, tag, inputs[tag], url, engines=len(engines), arm=name, router_env=env, **facts
        )
    run["profile"] = frames or None
    log(f"{tag}: engine {next(iter(run['engine_counters'].values()), None)}")
    return run


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("routers (issue 17): router settings on the same engines, in turn")
    g.add_argument(
        "--router-arm",
        action="append",
        default=[],
        help="NAME=EDITJUDGE_X=V ...: one arm (after 'default'), e.g. "
        "'free=EDITJUDGE_CONSTRAIN_REPLIES=false'",
    )
