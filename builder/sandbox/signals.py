"""The signals a sandbox's own processes pass on to the process they watch (the command, pid 1), so that
``kill``/``stop`` and a user's ^C reach it (shared by the RUN/container init and exec's init)."""

from __future__ import annotations

import os
import signal

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                     signal.SIGWINCH, signal.SIGCONT)


def forward_signals(pid: int) -> None:
    def handler(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, handler)


__all__ = ["FORWARDED_SIGNALS", "forward_signals"]
