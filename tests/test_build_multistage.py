"""Multi-stage builds: the stage graph, --target, parallel stages, BuildKit's errors for bad graphs.

Real builds in temporary stores (busybox base). The stage graph's errors carry BuildKit's texts
(``circular dependency detected on stage: X``, ``cannot copy from stage "x", it needs to be defined
before current stage "y"``) and point at the instruction that closes the loop.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from image_fixtures import ok, pb
from test_build_engine import build, built, new_store, step_states, write_context


@pytest.fixture(scope="module")
def store(tmp_path_factory, busybox_tar) -> Path:
    return new_store(tmp_path_factory.mktemp("multistage") / "root", busybox_tar)


def build_fails(result) -> str:
    """The progress and error text of a build that must fail (exit 1, an ``error:`` line, no traceback)."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr and "\nerror: " in "\n" + stderr, stderr
    return stderr


def _run(store: Path, image: str, *cmd: str) -> str:
    return ok(pb(store, "run", "--rm", "--network", "none", image, *cmd))


def test_stages_the_target_does_not_need_are_not_built(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", (
        "FROM busybox AS broken\n"
        "RUN echo the unused stage ran && exit 3\n"
        "FROM busybox AS base\n"
        "RUN echo base > /base.txt\n"
        "FROM base AS final\n"
        "RUN cat /base.txt > /final.txt\n"))
    image, progress = built(build(store, ctx, "-t", "ms-unused:1"))
    assert "unused stage ran" not in progress and "[broken" not in progress
    assert _run(store, "ms-unused:1", "cat", "/final.txt") == "base\n"


def test_target_stops_at_the_named_stage(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", (
        "FROM busybox AS one\n"
        "RUN echo one > /one.txt\n"
        "FROM one AS two\n"
        "RUN echo two > /two.txt && exit 5\n"))
    built(build(store, ctx, "--target", "one", "-t", "ms-target:1"))
    assert _run(store, "ms-target:1", "cat", "/one.txt") == "one\n"
    assert pb(store, "run", "--rm", "--network", "none", "ms-target:1", "cat", "/two.txt").returncode == 1
    out = build_fails(build(store, ctx, "--target", "three"))
    assert "target stage 'three' could not be found" in out or 'target stage "three" could not be found' in out


def test_copy_from_stage_index_and_image(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", (
        "FROM busybox AS builder\n"
        "RUN mkdir /out && echo made > /out/made.txt\n"
        "FROM scratch\n"
        "COPY --from=0 /out/made.txt /made.txt\n"
        "COPY --from=builder /out /dir\n"
        "COPY --from=busybox /bin/busybox /bin/busybox\n"))
    image, _ = built(build(store, ctx, "-t", "ms-copy:1"))
    assert _run(store, "ms-copy:1", "/bin/busybox", "cat", "/made.txt", "/dir/made.txt") == "made\nmade\n"
    # nothing of the builder stage but what was copied
    listing = _run(store, "ms-copy:1", "/bin/busybox", "find", "/", "-xdev")
    assert "/out" not in listing.split()


def test_a_cycle_is_rejected_with_the_stage_name(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", (
        "FROM busybox AS stage0\n"
        "COPY --from=stage2 /f1 /sub/\n"
        "FROM busybox AS stage1\n"
        "COPY --from=stage0 /f2 /sub/\n"
        "FROM busybox AS stage2\n"
        "COPY --from=stage1 /f2 /sub/\n"))
    out = build_fails(build(store, ctx))
    assert "circular dependency detected on stage: stage0" in out
    assert "Traceback" not in out
    assert re.search(r"Dockerfile:\d+", out), out


def test_a_stage_copying_from_itself_is_a_cycle(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM busybox AS stage0\nCOPY --from=stage0 /f1 /sub/\n")
    out = build_fails(build(store, ctx))
    assert "circular dependency detected on stage: stage0" in out
    assert "Dockerfile:2" in out


def test_copy_from_a_later_stage_is_refused(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", (
        "FROM busybox AS first\n"
        "COPY --from=second /etc/passwd /p\n"
        "FROM busybox AS second\n"
        "RUN true\n"))
    out = build_fails(build(store, ctx, "--target", "first"))
    assert 'cannot copy from stage "second", it needs to be defined before current stage "first"' in out


def test_from_variable_is_refused(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM busybox AS a\nFROM busybox\nARG S=a\nCOPY --from=$S /x /x\n")
    out = build_fails(build(store, ctx))
    assert "variable expansion is not supported for --from" in out and "Dockerfile:4" in out


def test_independent_stages_run_at_the_same_time(tmp_path, store):
    """Each stage records its start and end (the kernel's uptime, the same clock in every sandbox);
    the two RUNs must overlap. A third stage consumes both, so all three are needed."""
    record = "cut -d' ' -f1 /proc/uptime > /{0}.start; sleep 2; cut -d' ' -f1 /proc/uptime > /{0}.end"
    ctx = write_context(tmp_path / "ctx", (
        "FROM busybox AS left\n"
        f"RUN {record.format('left')}\n"
        "FROM busybox AS right\n"
        f"RUN {record.format('right')}\n"
        "FROM busybox\n"
        "COPY --from=left /left.start /left.end /times/\n"
        "COPY --from=right /right.start /right.end /times/\n"))
    built(build(store, ctx, "-t", "ms-parallel:1", "--no-cache"))
    text = _run(store, "ms-parallel:1", "sh", "-c", "cat /times/left.start /times/left.end "
                                                     "/times/right.start /times/right.end")
    left_start, left_end, right_start, right_end = (float(v) for v in text.split())
    assert left_start < right_end and right_start < left_end, text   # the intervals overlap


def test_a_failing_stage_fails_the_build_and_names_its_line(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", (
        "FROM busybox AS ok\n"
        "RUN sleep 1 && echo fine > /fine\n"
        "FROM busybox AS bad\n"
        "RUN echo failing here && exit 7\n"
        "FROM busybox\n"
        "COPY --from=ok /fine /fine\n"
        "COPY --from=bad /etc/passwd /p\n"))
    out = build_fails(build(store, ctx))
    assert "Dockerfile:4" in out and "exit code 7" in out and "Traceback" not in out
    mounts = Path("/proc/mounts").read_text()
    assert str(store) not in mounts


def test_multistage_rebuild_is_all_cached(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", (
        "FROM busybox AS builder\n"
        "COPY app.txt /src/app.txt\n"
        "RUN tr a-z A-Z < /src/app.txt > /out.txt\n"
        "FROM busybox\n"
        "COPY --from=builder /out.txt /out.txt\n"), {"app.txt": "hello\n"})
    first, _ = built(build(store, ctx, "-t", "ms-cache:1"))
    second, progress = built(build(store, ctx, "-t", "ms-cache:1", env={"PYBUILD_NO_MEMO": "1"}))
    assert first == second
    assert set(step_states(progress).values()) == {"CACHED"}, progress
    memo, progress = built(build(store, ctx, "-t", "ms-cache:1"))   # the no-op memo covers every stage
    assert memo == first and "nothing changed since the last identical build" in progress
    (ctx / "app.txt").write_text("changed\n")
    third, progress = built(build(store, ctx, "-t", "ms-cache:1"))
    states = step_states(progress)
    assert states["COPY app.txt /src/app.txt"] == "DONE"
    assert states["COPY --from=builder /out.txt /out.txt"] == "DONE"
    assert _run(store, "ms-cache:1", "cat", "/out.txt") == "CHANGED\n"


def test_sigint_during_parallel_stages_stops_both(tmp_path, store):
    """^C while two stages' RUNs run in parallel: both sandboxes are killed at once, the build exits 1
    without a traceback, and nothing of the build is left (processes, mounts, store records)."""
    import uuid

    from test_build_engine_run import _kill, _start, _wait_for, interrupt_and_check, processes_with, store_state

    token = uuid.uuid4().hex
    ctx = write_context(tmp_path / "ctx", (
        f"FROM busybox AS a\nRUN echo a-running; sleep 30; echo {token}\n"
        f"FROM busybox AS b\nRUN echo b-running; sleep 30; echo {token}\n"
        "FROM busybox\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n"))
    before = store_state(store)
    proc = _start(store, ctx)
    try:
        seen = _wait_for(proc, b" a-running\n")      # the RUN's output line, not the step's title
        seen += _wait_for(proc, b" b-running\n") if b" b-running\n" not in seen else b""
        assert len(processes_with(token)) >= 2, seen
    except BaseException:
        _kill(proc)
        raise
    interrupt_and_check(proc, store, before, token, seen)


def test_named_contexts_replace_stages_and_images(tmp_path, store):
    """``--build-context NAME=docker-image://REF`` stands in for an image or a stage of that name
    (the stage is then not built), ``docker-image://scratch`` is the empty image, a directory
    serves COPY --from."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "x.txt").write_text("from a named dir\n")
    ctx = write_context(tmp_path / "ctx", (
        "FROM busybox AS base\n"
        "RUN echo the stage ran && exit 9\n"
        "FROM base AS one\n"
        "COPY --from=files /x.txt /x.txt\n"
        "FROM empty\n"
        "COPY --from=one /x.txt /y.txt\n"
        "COPY --from=one /bin/busybox /bin/busybox\n"))
    image, progress = built(build(store, ctx, "-t", "ms-named:1", "--build-context", "base=docker-image://busybox",
                                  "--build-context", f"files={files}", "--build-context",
                                  "empty=docker-image://scratch"))
    assert "the stage ran" not in progress
    assert _run(store, "ms-named:1", "/bin/busybox", "cat", "/y.txt") == "from a named dir\n"
    listing = _run(store, "ms-named:1", "/bin/busybox", "find", "/", "-xdev", "-type", "f")
    mounted = {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}   # the runtime's bind mounts
    assert sorted(set(listing.split()) - mounted) == ["/bin/busybox", "/y.txt"]


def test_onbuild_copy_from_a_stage_makes_it_a_dependency(tmp_path, store):
    """A trigger's ``COPY --from`` (from the base stage's ONBUILD, or a base image's) makes the named
    stage a dependency of the stage that runs the trigger, as BuildKit re-resolves after triggers."""
    ctx = write_context(tmp_path / "ctx", (
        "FROM busybox AS maker\n"
        "RUN echo made > /made.txt\n"
        "FROM busybox AS base\n"
        "ONBUILD COPY --from=maker /made.txt /from-trigger.txt\n"
        "FROM base\n"
        "RUN cat /from-trigger.txt\n"))
    built(build(store, ctx, "-t", "ms-onbuild-stage:1"))
    assert _run(store, "ms-onbuild-stage:1", "cat", "/from-trigger.txt") == "made\n"
    # the same trigger stored in an image: a later Dockerfile FROM it needs its own "maker" stage
    base_ctx = write_context(tmp_path / "base", "FROM busybox\nONBUILD COPY --from=maker /made.txt /t.txt\n")
    built(build(store, base_ctx, "-t", "ms-onbuild-image:1"))
    ctx2 = write_context(tmp_path / "ctx2", (
        "FROM busybox AS maker\n"
        "RUN echo from the image trigger > /made.txt\n"
        "FROM ms-onbuild-image:1\n"))
    built(build(store, ctx2, "-t", "ms-onbuild-image:2"))
    assert _run(store, "ms-onbuild-image:2", "cat", "/t.txt") == "from the image trigger\n"
