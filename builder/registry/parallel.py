"""Transfers several at once, stopping together: the first failure (or an interrupt) cancels the rest."""

from __future__ import annotations

import threading
from typing import Callable, Sequence


class Cancelled(Exception):
    """Another transfer failed (or the user interrupted): this one stops at its next read or request."""


def run_all(work: Callable, items: Sequence, *, workers: int, cancel: threading.Event, name: str) -> None:
    """``work(item)`` for every item, ``workers`` at a time, in threads named ``name``.

    The first failure sets ``cancel`` (the others raise ``Cancelled`` at their next step) and, once
    every thread has stopped, is raised: the real error, not one of the cancellations it caused.
    """
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    if len(items) == 1:
        work(items[0])
        return
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix=name)
    try:
        futures = [pool.submit(work, item) for item in items]
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in finished):
            cancel.set()
            wait(futures)
            errors = [f.exception() for f in futures if f.exception() is not None]
            raise next((e for e in errors if not isinstance(e, Cancelled)), errors[0])
    except BaseException:
        cancel.set()       # an interrupt too: the others stop at their next step
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
