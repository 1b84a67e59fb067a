"""Decode many files on all cores, in order, with a progress line every ~10 %."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from fracture_tune.data.decode import DEFAULT_MAX_PIXELS, RejectedImage, decode_image

log = logging.getLogger(__name__)

# Below this many files a process pool costs more to start than it saves.
MIN_FILES_FOR_POOL = 64

DecodeOutcome = np.ndarray | str  # pixels, or the reason the file was rejected


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def decode_files(
    paths: Sequence[Path],
    image_size: int,
    *,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[DecodeOutcome]:
    """Decode every path with :func:`decode_image`; each outcome is the pixels or the rejection reason."""
    workers = max(1, workers or available_cores())
    jobs = [(str(path), image_size, max_pixels) for path in paths]
    started = time.perf_counter()
    if workers == 1 or len(jobs) < MIN_FILES_FOR_POOL:
        outcomes = list(_with_progress(map(_decode_job, jobs), len(jobs)))
    else:
        context = multiprocessing.get_context(_start_method())
        chunk = max(1, len(jobs) // (workers * 16))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            outcomes = list(_with_progress(pool.map(_decode_job, jobs, chunksize=chunk), len(jobs)))
    elapsed = time.perf_counter() - started
    log.info("decoded %d files in %.1f s on %d process(es)", len(jobs), elapsed, workers)
    return outcomes


def _start_method() -> str:
    """fork when this process has one thread: fastest, and it never re-imports the caller's script.
    With threads running (a Ray driver, a UI), fork can copy a lock some other thread holds, so use
    forkserver — which, like spawn, needs the usual ``if __name__ == "__main__":`` guard in scripts."""
    if os.name != "posix" or sys.platform == "darwin":
        return "spawn"
    return "fork" if threading.active_count() == 1 else "forkserver"


def _decode_job(job: tuple[str, int, int]) -> DecodeOutcome:
    path, image_size, max_pixels = job
    try:
        return decode_image(path, image_size, max_pixels=max_pixels)
    except RejectedImage as rejection:
        return rejection.reason


def _with_progress(outcomes: Iterator[DecodeOutcome], total: int) -> Iterator[DecodeOutcome]:
    step = max(1, total // 10)
    for done, outcome in enumerate(outcomes, start=1):
        if done % step == 0 or done == total:
            log.info("decoding: %d/%d files (%d%%)", done, total, done * 100 // max(total, 1))
        yield outcome
