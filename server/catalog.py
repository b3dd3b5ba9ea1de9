"""Which scoring protocols a router serves, from its settings: the built-in ones, the reference
protocols whose prompt files are configured (and how to configure the others), and the custom
templates. Built once at start-up, so that a broken template or reference file stops the router
(or ``editjudge serve``) before it serves anything."""

from __future__ import annotations

from collections.abc import Sequence

from .config import Settings
from .protocols import (
    ExpectedScore,
    GEdit,
    ImgEdit,
    ProtocolRegistry,
    ScoringProtocol,
    Unconstrained,
    VIEScore,
    edit_rubric,
    gedit,
    imgedit,
    load_templates,
)


def build_protocols(settings: Settings) -> list[ScoringProtocol]:
    """The built-in protocols, the reference protocols whose prompt files are configured, and the
    custom templates of ``EDITJUDGE_TEMPLATES_DIR``.

    Raises :class:`~editjudge.server.protocols.TemplateError` when a template file cannot be used
    and :class:`~editjudge.server.protocols.ReferencePromptsError` for a bad reference file.
    """
    chars = settings.max_reasoning_chars if settings.reasoning else 0
    builtin: list[ScoringProtocol] = [VIEScore(chars), ExpectedScore(), edit_rubric(chars)]
    constrained = settings.reference_reply == "constrained"
    if settings.gedit_prompts is not None:
        builtin.append(
            GEdit.from_file(settings.gedit_prompts, constrained=constrained, reasoning_chars=chars)
        )
    if settings.imgedit_prompts is not None:
        builtin.append(
            ImgEdit.from_file(
                settings.imgedit_prompts, constrained=constrained, reasoning_chars=chars
            )
        )
    served = builtin
    if settings.templates_dir is not None:
        reserved = {p.name for p in builtin} | set(unavailable_protocols(settings))
        custom = load_templates(
            settings.templates_dir, reserved, chars, first_chars=settings.max_reasoning_chars
        )
        served = [*builtin, *custom]
    return served if settings.constrain_replies else [Unconstrained(p) for p in served]


def unavailable_protocols(settings: Settings) -> dict[str, str]:
    """Reference protocols whose prompt files are not configured, with how to configure them."""
    out = {}
    if settings.gedit_prompts is None:
        out[GEdit.name] = gedit.UNAVAILABLE
    if settings.imgedit_prompts is None:
        out[ImgEdit.name] = imgedit.UNAVAILABLE
    return out


def build_registry(
    settings: Settings, protocols: Sequence[ScoringProtocol] | None = None
) -> ProtocolRegistry:
    """The registry requests resolve against; ``protocols`` defaults to :func:`build_protocols`."""
    served = build_protocols(settings) if protocols is None else protocols
    return ProtocolRegistry(served, settings.protocol, unavailable_protocols(settings))


def check_protocols(settings: Settings) -> None:
    """Build the protocol registry once, so a broken template stops start-up before serving.

    Raises :class:`~editjudge.server.protocols.TemplateError` or ``ValueError`` (an unknown
    or unavailable default protocol, a bad reference prompt file).
    """
    build_registry(settings)
