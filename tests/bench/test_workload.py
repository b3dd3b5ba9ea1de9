"""The benchmarks' workloads: every request a valid, never-repeated pair of JPEGs."""

from __future__ import annotations

import base64
import io

import orjson
from PIL import Image

from bench.workload import GROUP, TemplateSource, chat_template, score_template


def _images(body: bytes) -> tuple[bytes, bytes]:
    obj = orjson.loads(body)
    if "messages" in obj:
        urls = [p["image_url"]["url"] for p in obj["messages"][0]["content"] if "image_url" in p]
        source, edited = urls
    else:
        source, edited = obj["source_image"], obj["image"]
    return tuple(base64.b64decode(u.partition(",")[2], validate=True) for u in (source, edited))  # type: ignore[return-value]


def test_bodies_carry_valid_unique_jpegs_with_shared_sources() -> None:
    bodies = TemplateSource(chat_template(), b"choices", seed=1)
    pairs = [_images(bodies.body(i)) for i in range(2 * GROUP)]
    for source, edited in pairs[:3]:
        for raw in (source, edited):
            im = Image.open(io.BytesIO(raw))
            im.load()  # decodes: the spliced comment segment keeps the file valid
            assert (im.format, im.size) == ("JPEG", (512, 512))
    edits = [e for _, e in pairs]
    assert len(set(edits)) == len(edits)  # every edited image is new
    sources = [s for s, _ in pairs]
    assert len(set(sources[:GROUP])) == 1 and sources[0] != sources[GROUP]  # groups of 8
    assert 200_000 < len(bodies.body(0)) < 350_000  # ~270 KB, like shared/gpu/load.py


def test_score_bodies_name_the_protocol_and_differ_per_seed() -> None:
    template = score_template("single")
    a, b = TemplateSource(template, b"ok", seed=1), TemplateSource(template, b"ok", seed=2)
    assert orjson.loads(a.body(0))["protocol"] == "single"
    assert _images(a.body(0))[1] != _images(b.body(0))[1]
