"""HEALTHCHECK: the monitor probes the running container as docker does.

The first probe runs one interval after the start, then one per interval.  A probe is the test
command run inside the container (``exec``'s path); exit 0 is healthy, anything else (or running past
the timeout) a failure.  ``retries`` failures in a row make the container unhealthy; failures during
the start period do not count.  The status and the last five probes go to ``state.json``'s health.
"""

from __future__ import annotations

import threading
import time

from .records import now_rfc3339

KEEP = 5
MAX_OUTPUT = 4096


class HealthProbe(threading.Thread):
    def __init__(self, store, config, pid: int):
        super().__init__(daemon=True, name="health")
        self.store = store
        self.config = config
        self.pid = pid
        self.health = {"Status": "starting", "FailingStreak": 0, "Log": []}

    def _save(self) -> None:
        state = self.store.state(self.config.id)
        if state.pid != self.pid:
            raise _Stopped()
        self.store.update_state(self.config.id, health=dict(self.health))

    def run(self) -> None:
        try:
            self._save()
            started = time.monotonic()
            check = self.config.healthcheck
            while True:
                time.sleep(check.interval)
                code, output, begun = self.probe(check)
                in_start_period = time.monotonic() - started < check.start_period
                log = self.health["Log"][-(KEEP - 1):] + [{"Start": begun, "End": now_rfc3339(), "ExitCode": code,
                                                           "Output": output}]
                self.health["Log"] = log
                if code == 0:
                    self.health.update(Status="healthy", FailingStreak=0)
                elif not in_start_period:
                    self.health["FailingStreak"] += 1
                    if self.health["FailingStreak"] >= check.retries:
                        self.health["Status"] = "unhealthy"
                self._save()
        except _Stopped:
            return

    def probe(self, check) -> tuple[int, str, str]:
        from ..sandbox.caps import capability_set
        from ..sandbox.enter import EnterSpec, ExecError, ExecTimeout, NotRunningError, run_in

        begun = now_rfc3339()
        test = tuple(check.test)
        argv = ("/bin/sh", "-c", test[1]) if test[0] == "CMD-SHELL" else test[1:]
        from .createspec import runtime_env

        spec = EnterSpec(argv=argv, env=runtime_env(self.config), cwd=self.config.working_dir or "/", user=self.config.user,
                         stderr="stdout", privileged=self.config.privileged,
                         caps=capability_set(self.config.cap_add, self.config.cap_drop))
        try:
            result = run_in(self.pid, spec, timeout=check.timeout)
        except ExecTimeout:
            return -1, f"Health check exceeded timeout ({check.timeout:g}s)", begun
        except NotRunningError:
            raise _Stopped() from None
        except ExecError as err:
            return err.exit_code or 1, err.message, begun
        except Exception as err:  # noqa: BLE001 - a probe that cannot run is a failed probe
            return 1, str(err), begun
        return result.exit_code, result.stdout[:MAX_OUTPUT].decode("utf-8", "replace"), begun


class _Stopped(Exception):
    """The container this probe watched is gone (stopped, restarted)."""


__all__ = ["HealthProbe"]
