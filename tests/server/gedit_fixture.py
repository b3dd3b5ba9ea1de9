"""A synthetic stand-in for GEdit-Bench's ``viescore/vie_prompts.py``: the same variable names and
shape (triple-quoted constants, a leading newline in the SC rule, other constants around them),
with our own placeholder text. The real file is never part of this repository."""

from __future__ import annotations

from pathlib import Path

CONTEXT = 'CTX line one.\nCTX format:\n{\n"score" : [...],\n"reasoning" : "..."\n}'
EDIT_RULE = "EDIT RULE: two images, the second edited.\n"
TIE_SC = "\nSC scale 0-10, two scores.\n\nEditing instruction: <instruction>\n"
PQ_RULE = "PQ RULE: one image.\n(\n    0 = artifacts.\n)\nscore = [naturalness, artifacts]\n"

SOURCE = f'''# generated, like the reference
import os
_context_no_delimit = """{CONTEXT}"""

_context = "with delimiters, unused"
_prompts_0shot_two_image_edit_rule = """{EDIT_RULE}"""

_prompts_0shot_tie_rule_SC = """{TIE_SC}"""
_prompts_0shot_rule_PQ = """{PQ_RULE}"""
_not_a_string = 42
os.system("echo this file must never run")
raise SystemExit("executed!")
'''

SC_TEMPLATE = "\n".join([CONTEXT, EDIT_RULE, TIE_SC])
PQ_TEXT = "\n".join([CONTEXT, PQ_RULE])


def write_prompts(directory: Path) -> Path:
    path = directory / "vie_prompts.py"
    path.write_text(SOURCE, encoding="utf-8")
    return path
