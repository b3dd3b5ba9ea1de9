"""A synthetic stand-in for ImgEdit's ``Benchmark/Basic/prompts.json``, in its shape: per edit
type, a rubric with numbered anchors per criterion and a "Label: ..." reply format before the
``<edit_prompt>`` line, with our own placeholder text. The real file is never part of this
repository."""

from __future__ import annotations

import json
from pathlib import Path


def prompt(kind: str, labels: list[str], headings: list[str] | None = None) -> str:
    rubric = "".join(
        f"{h}\n" + "".join(f"{n}  {kind} anchor {n}.\n" for n in range(1, 6)) + "\n"
        for h in headings or labels
    )
    reply = "".join(f"{label}: an integer, 1-5.\n" for label in labels)
    return (
        f"\nRate a {kind} edit on three criteria.\n\n{rubric}Later scores stay below the first.\n\n"
        f"Reply like this:\nWhy: a short reason.\n{reply}the instruction: <edit_prompt>.\n\n"
        "The two images follow:\n"
    )


PROMPTS = {
    "add": prompt("addition", ["Compliance", "Naturalness", "Physical & Detail"]),
    "style": prompt(
        "style", ["Style Fidelity", "Content", "Quality"], ["Style Fidelity (look)", "Content", "Q"]
    ),
}


def write_prompts(directory: Path) -> Path:
    path = directory / "prompts.json"
    path.write_text(json.dumps(PROMPTS))
    return path
