"""Giving memory back to the OS after a load (glibc's allocator).

The router's big buffers (bodies, base64 text) are allocated and freed by the thousand under load.
glibc keeps freed memory for reuse: after a burst the process would stay at its peak RSS. Two
measures, both from inside the process, so every way of starting the router gets them
(``editjudge router``, ``python -m editjudge.server``, the Docker image, ``editjudge serve``'s
in-process router, every uvicorn worker), with nothing to set in the environment:

* :func:`tune_allocator` fixes glibc's mmap threshold (``mallopt(M_MMAP_THRESHOLD)``, the same as
  ``MALLOC_MMAP_THRESHOLD_``): buffers above it get their own mapping, returned to the OS when
  freed, instead of the threshold rising after each free until they all come from the heap;
* :func:`trim_loop` calls ``malloc_trim(0)`` once the budget shows that a load has drained, which
  returns the free pages left in the heaps.

:func:`freeze_startup_objects` keeps the cyclic garbage collector off the objects built at start-up
(:func:`thaw_startup_objects` when the app stops), and :func:`collect_young_less_often` has it
walk the in-flight requests' objects less often (:func:`restore_collector`).

Elsewhere (musl, macOS) both do nothing. ``bench/memory.py`` measures each; RELIABILITY.md has the
numbers.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import logging
import time
from typing import Any

from .admission import Budget

log = logging.getLogger("editjudge.memory")

_M_MMAP_THRESHOLD = -3  # mallopt parameter number, from glibc's malloc.h
#: A drop in held bytes worth trimming for (below it, the pages are soon reused anyway).
TRIM_AFTER_DROP = 32 * 1024 * 1024
#: Container allocations between young-generation collections while the app serves (Python's
#: default: 700). A request allocates hundreds and its objects live until its engine answers, so
#: at the default every collection walked the in-flight requests' objects again, and moved them
#: on to older generations to be walked there too: ~5% of the router's CPU at saturation
#: (perf), next to nothing at this threshold. Garbage in reference cycles waits a few dozen
#: requests longer for its collection.
YOUNG_GC_THRESHOLD = 20_000


@functools.cache
def _glibc() -> Any:
    """glibc's functions, or None when the C library is another one. Looked up once:
    ``find_library`` runs ``ldconfig -p`` in a subprocess, and trims come every few seconds."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    return libc


def tune_allocator(mmap_threshold: int) -> bool:
    """Fix the mmap threshold at ``mmap_threshold`` bytes (0: leave glibc's dynamic default).
    Returns whether it was applied."""
    libc = _glibc()
    if libc is None or mmap_threshold <= 0:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(mmap_threshold)))


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, routes, schemas, the app's context: ~100k of them,
    all kept for the process's life) out of the cyclic collector's reach. Under load, objects of
    in-flight requests reach the oldest generation, and each full collection then traversed the
    startup objects too: tens of ms per collection, a few percent of the router's CPU.
    :func:`thaw_startup_objects` undoes it when the app stops."""
    gc.collect()
    gc.freeze()


def thaw_startup_objects() -> None:
    """Hand the frozen objects back to the collector (the app stopped): a process that builds
    apps one after another (tests, embedders) must not keep each one's cycles forever."""
    gc.unfreeze()


def collect_young_less_often() -> tuple[int, int, int]:
    """Raise the young generation's threshold to :data:`YOUNG_GC_THRESHOLD` while the app
    serves; returns the thresholds it replaced, for :func:`restore_collector`."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_GC_THRESHOLD), middle, old)
    return young, middle, old


def restore_collector(thresholds: tuple[int, int, int]) -> None:
    """Put back the thresholds :func:`collect_young_less_often` replaced (the app stopped)."""
    gc.set_threshold(*thresholds)


def trim() -> bool:
    """Return the free memory of glibc's heaps to the OS; whether any was returned."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(ctypes.c_size_t(0)))


async def trim_loop(budget: Budget, interval_s: float, min_drop: int) -> None:
    """Every ``interval_s``, trim once the bytes the budget holds have dropped by ``min_drop`` or
    more below their peak since the last trim: a load has drained, its memory is free now."""
    if _glibc() is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        peak, now = budget.peak_bytes, budget.bytes
        if peak - now < min_drop:
            continue
        budget.reset_peak()
        t0 = time.perf_counter()
        # ctypes releases the GIL for the call; the loop only waits if it needs the heap's lock.
        await asyncio.to_thread(trim)
        log.debug("malloc_trim after %d -> %d held bytes: %.1f ms", peak, now, _ms(t0))


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000
