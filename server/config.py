"""Router configuration: one :class:`Settings`, read from ``EDITJUDGE_*`` environment variables.

The settings object is built once (by ``create_app`` or the CLI) and handed down through the app's
lifespan; nothing in the router reads the environment on its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024

RoutingPolicyName = Literal["least_outstanding", "round_robin", "affinity"]
HttpClientName = Literal["aiohttp", "httpx"]
DiscoveryMode = Literal["static", "dns"]


def _split_csv(value: object) -> object:
    """Accept ``"a,b"`` (the environment's form) as well as a list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the router. Environment variables use the ``EDITJUDGE_`` prefix.

    ``BACKENDS`` and ``API_KEYS`` take comma-separated values, e.g.
    ``EDITJUDGE_BACKENDS=http://gpu0:8001,http://gpu1:8002``.
    """

    # An empty variable means "unset", so compose files can pass optional settings through.
    model_config = SettingsConfigDict(
        env_prefix="EDITJUDGE_", env_file=None, extra="ignore", env_ignore_empty=True
    )

    backends: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Base URLs of the vLLM OpenAI-compatible servers."
    )
    discovery: DiscoveryMode = Field(
        "static",
        description="Where backends come from: 'static' (BACKENDS only) or 'dns' (BACKENDS plus "
        "what DISCOVERY_DNS_NAME resolves to, re-resolved every DISCOVERY_INTERVAL_S).",
    )
    discovery_dns_name: str | None = Field(
        None,
        description="Name to resolve in 'dns' mode: A/AAAA records (e.g. a headless Service), or "
        "SRV records when it starts with '_' (e.g. _http._tcp.vllm.ns.svc.cluster.local).",
    )
    discovery_port: int = Field(
        8000, ge=1, le=65535, description="Engine port for A/AAAA answers (SRV carries its own)."
    )
    discovery_interval_s: float = Field(10.0, gt=0, description="Seconds between DNS lookups.")
    discovery_scheme: Literal["http", "https"] = "http"
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=1, le=65535)
    model: str | None = Field(
        None, description="Served model name; discovered from the first healthy backend if unset."
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Accepted bearer tokens; empty means no authentication."
    )
    api_keys_file: Path | None = Field(
        None, description="File with one API key per line (blank lines and '#' comments ignored)."
    )
    protect_metrics: bool = Field(False, description="Require an API key on /metrics too.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed by CORS; empty disables CORS."
    )

    max_body_bytes: int = Field(64 * MiB, gt=0)
    max_image_bytes: int = Field(32 * MiB, gt=0, description="Largest single encoded image.")
    max_image_pixels: int = Field(40_000_000, gt=0, description="Largest accepted image (w*h).")
    max_batch_items: int = Field(1024, gt=0)
    image_formats: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["JPEG", "PNG", "WEBP"],
        description="Pillow format names accepted as input (others, e.g. GIF, BMP, TIFF, are "
        "re-encoded to PNG when allowed).",
    )
    image_check: Literal["header", "decode"] = Field(
        "header",
        description="How deeply intake checks a JPEG that passes through unchanged: 'header' "
        "(format, size, EXIF, base64 alphabet and end-of-image marker, without decoding the "
        "base64 text; ~0.2 ms) or 'decode' (also decode every pixel once; ~2 ms per 512x512 "
        "image). Other formats are always decoded once.",
    )
    resize_max_pixels: int | None = Field(
        None,
        gt=0,
        description="Downscale images above this many pixels before they reach vLLM "
        "(None: send them as they came, only EXIF-rotated).",
    )

    resize_grid: int | None = Field(
        None,
        gt=0,
        description="Snap resized sides to multiples of this (28: Qwen2.5-VL, 32: Qwen3-VL).",
    )

    health_interval_s: float = Field(2.0, gt=0)
    request_timeout_s: float = Field(120.0, gt=0, description="Timeout of one call to a backend.")
    request_deadline_s: float = Field(
        600.0, gt=0, description="Wall-clock budget of one /score request, retries included."
    )
    max_in_flight_per_backend: int = Field(
        256,
        gt=0,
        description="Most requests in flight per backend (an item holds one per call): the "
        "ceiling of the adaptive window, or the window itself with IN_FLIGHT_CONTROL=fixed.",
    )
    in_flight_control: Literal["adaptive", "fixed"] = Field(
        "adaptive",
        description="adaptive: each engine's window of requests follows its own queue (vLLM's "
        "running-request gauge on /metrics), and the router queues the rest, fairly across "
        "requests; fixed: every window is MAX_IN_FLIGHT_PER_BACKEND.",
    )
    min_in_flight_per_backend: int = Field(4, gt=0, description="Floor of the adaptive window.")
    start_in_flight_per_backend: int = Field(
        32, gt=0, description="An engine's window before its load is known (and without metrics)."
    )
    load_interval_s: float = Field(
        0.5, gt=0, description="Seconds between reads of each engine's running-request count."
    )
    max_queued_items: int = Field(
        8192, gt=0, description="Router-wide budget of items admitted and not yet finished."
    )
    max_queued_image_bytes: int = Field(
        2048 * MiB,
        gt=0,
        description="Router-wide budget of request memory: bodies being received (x1) and parsed "
        "(x2), images being decoded (4 bytes a pixel) and the base64 text of admitted images. "
        "The router's RSS stays within about 150 MiB plus this.",
    )
    upload_budget_share: float = Field(
        0.25,
        gt=0,
        le=1,
        description="Share of MAX_QUEUED_IMAGE_BYTES that request bodies still being received may "
        "hold, router-wide; uploads beyond it get 429, so slow senders cannot lock out work that "
        "has already arrived.",
    )
    body_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A request body must be complete within BODY_TIMEOUT_S plus one second per "
        "BODY_MIN_RATE bytes received, counted from when the router starts reading it (after "
        "authentication); slower bodies get 408 body_timeout and the connection is closed.",
    )
    body_min_rate: int = Field(
        65536,
        gt=0,
        description="Bytes per second a request body must keep up (see BODY_TIMEOUT_S).",
    )
    image_threads: int = Field(
        default_factory=lambda: max(1, min(4, os.cpu_count() or 1)),
        gt=0,
        description="Worker threads that decode and check images (off the event loop); at most "
        "this many images are decoded at once, each charging its pixels to the byte budget.",
    )
    memory_trim_interval_s: float = Field(
        1.0,
        ge=0,
        description="How often the router checks whether a load has drained, to return its freed "
        "memory to the OS (glibc malloc_trim); 0 turns it off.",
    )
    malloc_mmap_threshold: int = Field(
        128 * 1024,
        ge=0,
        description="Buffers of at least this many bytes get their own mapping from glibc, "
        "returned to the OS when freed (mallopt M_MMAP_THRESHOLD); 0 keeps glibc's default.",
    )
    max_attempts: int = Field(3, ge=1, description="Tries per item across backends.")
    failure_threshold: int = Field(
        3, ge=1, description="Consecutive failures that open a backend's circuit."
    )
    circuit_open_s: float = Field(5.0, gt=0, description="Wait before a half-open probe.")
    no_backend_wait_s: float = Field(
        10.0,
        gt=0,
        description="How long an item waits for some backend to become healthy while none is, "
        "before it fails with no_healthy_backend.",
    )

    protocol: str = "viescore"
    templates_dir: Path | None = Field(None, description="Directory of custom prompt templates.")
    gedit_prompts: Path | None = Field(
        None,
        description="GEdit-Bench's viescore/vie_prompts.py (read with ast, never run): enables "
        "protocol 'gedit', the benchmark's own prompts.",
    )
    imgedit_prompts: Path | None = Field(
        None,
        description="ImgEdit's Benchmark/Basic/prompts.json: enables protocol 'imgedit', one "
        "prompt per edit type.",
    )
    reference_reply: Literal["free", "constrained"] = Field(
        "free",
        description="Replies of 'gedit' and 'imgedit': 'free' text as the references decode it "
        "(an unparseable reply is an error item), or 'constrained' to the layout their prompts "
        "show (every reply parses; needed for weak or random-weight models).",
    )
    routing_policy: RoutingPolicyName = "least_outstanding"
    affinity_epsilon: float = Field(0.25, ge=0, description="Bounded-load slack for affinity.")
    seed: int = 0
    reasoning: bool = Field(True, description="Ask the judge for a short written reasoning.")
    max_reasoning_chars: int = Field(240, ge=0)
    constrain_replies: bool = Field(
        True,
        description="Hold every reply to its format with vLLM's structured outputs, so every "
        "reply parses. false: replies are free text, parsed leniently (an unparseable one is an "
        "error item with its raw text); vLLM then samples without waiting for the host's "
        "grammar work after each step.",
    )
    http_client: HttpClientName = "aiohttp"

    score_cache: Literal["off", "memory", "sqlite"] = "off"
    score_cache_path: Path = Path("editjudge-cache.sqlite")
    score_cache_max_items: int = Field(100_000, gt=0)

    workers: int = Field(
        1,
        ge=1,
        description="Router processes sharing the port (uvicorn workers). Each keeps its own "
        "view of backend load (per-worker least-outstanding), health and metrics: /backends and "
        "/metrics answer for the one process that took the request.",
    )
    log_level: str = "info"

    @field_validator("backends", "api_keys", "cors_origins", "image_formats", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("backends")
    @classmethod
    def _normalise_urls(cls, urls: list[str]) -> list[str]:
        out = []
        for url in urls:
            if not url.startswith(("http://", "https://")):
                url = "http://" + url
            out.append(url.rstrip("/"))
        if len(set(out)) != len(out):
            raise ValueError("EDITJUDGE_BACKENDS lists the same URL twice")
        return out

    @field_validator("image_formats")
    @classmethod
    def _upper(cls, formats: list[str]) -> list[str]:
        return [f.upper() for f in formats]

    @model_validator(mode="after")
    def _discovery_needs_a_name(self) -> Settings:
        if self.discovery == "dns" and not self.discovery_dns_name:
            raise ValueError("EDITJUDGE_DISCOVERY=dns needs EDITJUDGE_DISCOVERY_DNS_NAME")
        return self

    @model_validator(mode="after")
    def _load_keys_file(self) -> Settings:
        if self.api_keys_file is not None:
            try:
                lines = self.api_keys_file.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"cannot read EDITJUDGE_API_KEYS_FILE: {exc}") from None
            keys = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
            if not keys:
                # A key file was configured, so authentication was meant: an empty one (e.g. the
                # example Kubernetes Secret left unedited) must not silently turn auth off.
                raise ValueError(f"EDITJUDGE_API_KEYS_FILE {self.api_keys_file} lists no keys")
            self.api_keys = [*self.api_keys, *(SecretStr(k) for k in keys)]
        return self

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)
