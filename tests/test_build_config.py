"""Image config and history of a build, against what docker's BuildKit wrote for the same Dockerfiles.

The golden files under ``tests/fixtures/build/<case>/golden.json`` were captured by
``tools/capture-goldens`` (docker 20.10 = BuildKit 0.8, on the busybox image saved in
``tests/fixtures/build/_base/``). Each case is planned with the ``DOCKER_20_10`` history style and
compared exactly, config and history, after the same normalisation as the capture (no times,
placeholder layer digests) plus two JSON spellings of Go's ``nil`` that BuildKit 0.8 writes and
pybuild does not (``"OnBuild": null`` and ``"diff_ids": null``, i.e. an absent value / an empty list).
The file trees of the layers wait for the executor; here each layer step must line up with a
captured layer, and a WORKDIR's layer must hold its directory.

The current BuildKit writes five history texts differently (``history.HistoryStyle``); those are
checked against texts derived from its ``convert.go``.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import replace
from pathlib import Path

import pytest

from builder.build import history as hist
from builder.build.configstep import (
    NeedsExecutor, default_shell, empty_image, make_plan_context, parse_signal, plan_stage, plan_step,
    plan_target, run_argv, start_stage, finalize_result,
)
from builder.build.history import BUILDKIT, DOCKER_20_10
from builder.dockerfile.instructions import parse_dockerfile
from builder.errors import DockerfileError
from builder.image.config import History, ImageConfig, RootFS, parse_config, parse_timestamp
from builder.image.platform import Platform

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "build"
BASE_BYTES = (FIXTURES / "_base" / "busybox-config.json").read_bytes()
BASE = parse_config(BASE_BYTES)
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "golden.json").exists())
LINUX = Platform("linux", "amd64")


def golden(case: str) -> dict:
    return json.loads((FIXTURES / case / "golden.json").read_text())


def dockerfile(case: str):
    return parse_dockerfile((FIXTURES / case / "Dockerfile").read_bytes())


def fake_diff(step) -> str:
    return "sha256:" + hashlib.sha256(step.history.created_by.encode()).hexdigest()


def plan_case(case: str, style=DOCKER_20_10, layer=fake_diff):
    g = golden(case)
    df = dockerfile(case)
    ctx = make_plan_context(df, g["build_args"], style=style, build_platform=LINUX)
    return plan_target(df, ctx, base_images={"busybox": BASE}, target=g["target"], layer=layer)


def normalise(config: dict, base_layers: int) -> tuple[dict, list]:
    """The capture's normalisation (tools/capture-goldens), and Go's nils read as absent/empty."""
    config = json.loads(json.dumps(config))
    config.pop("created", None)
    history = [{k: v for k, v in h.items() if k != "created"} for h in config.pop("history", [])]
    inner = config.get("config") or {}
    config["config"] = {k: v for k, v in inner.items() if v is not None}   # BuildKit 0.8: "OnBuild": null
    rootfs = config.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") or []                                  # BuildKit 0.8: "diff_ids": null
    rootfs["diff_ids"] = [f"<base:{i}>" if i < base_layers else f"<layer:{i}>" for i in range(len(diff_ids))]
    return config, history


# ----------------------------------------------------------------------------------------------
# the captured cases


def test_goldens_were_captured_on_the_saved_base():
    info = json.loads((FIXTURES / "_base" / "busybox.json").read_text())
    assert BASE.digest == info["image_id"]
    assert len(CASES) >= 20
    for case in CASES:
        g = golden(case)
        assert g["base"]["image_id"] == info["image_id"], case
        assert g["captured_with"]["docker"].startswith("20.10"), case


@pytest.mark.parametrize("case", CASES)
def test_config_and_history_match_docker(case):
    g = golden(case)
    plan = plan_case(case)
    base_layers = 0 if case.startswith("scratch") else len(BASE.diff_ids)
    got_config, got_history = normalise(plan.config.to_dict(), base_layers)
    want_config, _ = normalise(g["config"], base_layers)
    assert got_history == g["history"]
    assert got_config == want_config


@pytest.mark.parametrize("case", CASES)
def test_layer_steps_line_up_with_captured_layers(case):
    g = golden(case)
    plan = plan_case(case)
    layer_steps = [s for s in plan.steps if s.needs_layer]
    new_layers = g["layers"]
    # a stage built FROM another stage carries that stage's layers too
    assert len(plan.config.diff_ids) == len(BASE.diff_ids) * (not case.startswith("scratch")) + len(new_layers)
    own = new_layers[len(new_layers) - len(layer_steps):]
    made = set()
    for step, layer in zip(layer_steps, own):
        files = {f["path"]: f for f in layer["files"]}
        if step.workdir:
            path = posixpath.normpath(step.workdir).lstrip("/")
            if path in made:
                assert files == {}, "mkdir -p of an existing directory changes nothing"
            else:
                assert files[path]["type"] == "dir" and files[path]["mode"] == "0755", (step.workdir, files)
        made.update(files)


def test_run_steps_carry_their_argv():
    plan = plan_case("shell")
    runs = [s for s in plan.steps if s.argv]
    assert [s.argv for s in runs] == [("/bin/sh", "-ec", "true"),
                                      ("/bin/busybox", "sh", "-c", 'echo "$0" > /dev/null')]


def test_metadata_only_stage_needs_no_executor():
    df = dockerfile("label")
    ctx = make_plan_context(df, {}, style=DOCKER_20_10)
    plan = plan_stage(df, df.stages[0], ctx, base_image=BASE)
    assert plan.config.config.labels["version"] == "9"
    with pytest.raises(NeedsExecutor) as err:
        df = dockerfile("workdir")
        plan_stage(df, df.stages[0], make_plan_context(df), base_image=BASE)
    assert err.value.span.line == 3  # "WORKDIR /" has no layer; "WORKDIR /app" has


# ----------------------------------------------------------------------------------------------
# the current BuildKit's texts


CURRENT = {
    "healthcheck": [
        "HEALTHCHECK {Test:[CMD-SHELL wget -q -O- http://localhost/ || exit 1] Interval:0s Timeout:0s "
        "StartPeriod:0s StartInterval:0s Retries:0}",
        "HEALTHCHECK {Test:[CMD /bin/check a b] Interval:5m0s Timeout:3s StartPeriod:0s StartInterval:0s Retries:0}",
        "HEALTHCHECK {Test:[CMD-SHELL /bin/true] Interval:1m30s Timeout:10s StartPeriod:2s StartInterval:0s "
        "Retries:5}",
        "HEALTHCHECK {Test:[CMD /bin/true] Interval:1.5s Timeout:250ms StartPeriod:0s StartInterval:0s Retries:0}",
        "HEALTHCHECK {Test:[CMD-SHELL true] Interval:0s Timeout:0s StartPeriod:1h0m0s StartInterval:0s Retries:65}",
    ],
    # the raw words are sorted before expansion ("0.0.0.0:9090:90" < "80/tcp"), duplicates stay
    "expose": ["EXPOSE [80/tcp]",
               "EXPOSE [132/sctp 443/tcp 53/udp 53/udp 7000/udp 7001/udp 9000/tcp 9001/tcp 9002/tcp]",
               "EXPOSE [8080/tcp 8080/udp]", "EXPOSE [81/tcp 82/udp]", "EXPOSE [90/tcp 80/tcp]"],
    # the value the ARG got: build arg, default, or the global value
    "arg": ["ARG A=cli-a", "ARG B=b-default", "ARG C=b-default-suffix D=cli-a", "ARG G=global-default",
            "ARG H=h-default", "ARG NOVALUE", "ARG I=cli-i", "ARG E=from-arg"],
    # args of the stage built FROM are in the prefix
    "stage-inherit": ["ARG A=1", "RUN |1 A=1 /bin/sh -c true # buildkit", "ARG B=2",
                      "RUN |2 A=1 B=2 /bin/sh -c true # buildkit"],
    "copy-add": ["COPY hello.txt /hello.txt # buildkit", "COPY hello.txt dir/ /dest/ # buildkit",
                 "COPY hello.txt relative.txt # buildkit", "COPY --chown=nobody:nogroup hello.txt /owned.txt # buildkit",
                 "COPY --chown=1000 --chmod=640 hello.txt /json form.txt # buildkit", "ADD hello.txt /added/ # buildkit",
                 "ADD --chown=65534:65534 dir /added-dir # buildkit", "COPY nothing* /empty-glob/ # buildkit"],
}


@pytest.mark.parametrize("case", sorted(CURRENT))
def test_current_buildkit_texts(case):
    kinds = {"healthcheck": "HEALTHCHECK", "expose": "EXPOSE", "arg": "ARG", "stage-inherit": ("ARG", "RUN"),
             "copy-add": ("COPY", "ADD")}[case]
    plan = plan_case(case, style=BUILDKIT)
    texts = [h.created_by for h in plan.config.history if h.created_by.startswith(kinds)]
    assert texts == CURRENT[case]


def test_styles_differ_only_where_documented():
    for case in CASES:
        old = plan_case(case, style=DOCKER_20_10).config
        new = plan_case(case, style=BUILDKIT).config
        assert old.config == new.config, case
        for a, b in zip(old.history, new.history):
            if a.created_by != b.created_by:
                assert a.created_by.split()[0] in ("ARG", "HEALTHCHECK", "EXPOSE", "RUN", "COPY", "ADD"), (case, a)


def test_arg_declared_twice_is_listed_once_in_the_current_run_prefix():
    df = parse_dockerfile(b"FROM busybox\nARG A=1\nARG B\nARG A=2\nENV B=env\nRUN true\n")
    texts = {}
    for style in (BUILDKIT, DOCKER_20_10):
        plan = plan_stage(df, df.stages[0], make_plan_context(df, style=style), base_image=BASE, layer=fake_diff)
        texts[style.name] = plan.config.history[-1].created_by
    assert texts["buildkit"] == "RUN |2 A=2 B=env /bin/sh -c true # buildkit"
    assert texts["docker-20.10"] == "RUN |3 A=2 B=env A=2 /bin/sh -c true # buildkit"


def test_copy_heredoc_and_parents_in_current_history():
    df = parse_dockerfile(b"FROM busybox\nCOPY --parents --chmod=0755 a/./b <<EOF <<-OTHER /dst/\nx\nEOF\n\ty\nOTHER\n"
                          b"ADD --link --exclude=*.md --checksum=sha256:0 https://example.com/f /x\n")
    plan = plan_stage(df, df.stages[0], make_plan_context(df), base_image=BASE, layer=fake_diff)
    assert [h.created_by for h in plan.config.history[1:]] == [
        "COPY --parents --chmod=0755 a/./b <<EOF <<OTHER /dst/ # buildkit",
        "ADD https://example.com/f /x # buildkit",
    ]


# ----------------------------------------------------------------------------------------------
# stage starts, steps


def test_scratch_starts_from_buildkits_empty_image():
    config = empty_image(Platform("linux", "arm64", "v8"))
    d = config.to_dict()
    assert d["config"] == {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                           "WorkingDir": "/"}
    assert (d["architecture"], d["variant"], d["rootfs"]) == ("arm64", "v8", {"type": "layers", "diff_ids": []})
    assert "Env" not in empty_image(Platform("windows", "amd64")).to_dict()["config"]


def test_base_image_start_keeps_history_drops_created_adds_path_and_runs_triggers():
    base = replace(BASE, config=replace(BASE.config, env=("A=1",), on_build=("LABEL t=1", "ENV B=$A")))
    df = parse_dockerfile(b"FROM busybox\nLABEL own=1\n")
    ctx = make_plan_context(df)
    start = start_stage(df, df.stages[0], ctx, base_image=base)
    assert start.config.created is None and start.config.history == BASE.history
    assert start.config.config.env == ("A=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    assert start.config.config.on_build == ()
    assert [t.keyword for t in start.triggers] == ["LABEL", "ENV"]
    plan = plan_stage(df, df.stages[0], ctx, base_image=base)
    assert [h.created_by for h in plan.config.history[1:]] == ["LABEL t=1", "ENV B=1", "LABEL own=1"]
    assert [s.from_onbuild for s in plan.steps] == [True, True, False]
    assert "OnBuild" not in plan.config.to_dict()["config"]


def test_stage_from_stage_inherits_config_and_clears_its_triggers():
    plan = plan_case("onbuild-trigger")
    assert plan.config.config.on_build == ()
    assert plan.config.config.labels == {"triggered": "yes", "own": "1"}


def test_entrypoint_keeps_cmd_of_the_same_stage_only():
    assert plan_case("entrypoint-after-cmd").config.config.cmd == ("kept",)
    inherited = plan_case("entrypoint-clears-inherited").config.config
    assert inherited.cmd == () and inherited.entrypoint == () and inherited.args_escaped


def test_workdir_absolute_kept_relative_joined_and_cleaned():
    plan = plan_case("workdir")
    dirs = [s.workdir for s in plan.steps if s.needs_layer]
    assert dirs == ["/app", "/app/sub/dir", "/app/sub/other", "/abs/./x/../y/", "/abs/y/vars", "/owned-by-nobody",
                    "/app"]
    root = [s for s in plan.steps if s.instruction.keyword == "WORKDIR" and not s.needs_layer]
    assert len(root) == 1 and root[0].history.empty_layer


def test_run_heredocs_and_windows_shell():
    df = parse_dockerfile(b"FROM busybox\nRUN <<EOF\n#!/bin/sh\necho a\nEOF\nRUN <<-EOF\n\techo b\nEOF\n"
                          b"RUN cat <<A > /x\nbody\nA\nRUN [\"/bin/true\", \"x\"]\n")
    config = BASE
    argvs = [run_argv(i, config) for i in df.stages[0].instructions]
    assert argvs == [("/bin/sh", "-c", "/dev/pipes/EOF"), ("/bin/sh", "-c", "echo b\n"),
                     ("/bin/sh", "-c", "cat <<A > /x\nbody\nA"), ("/bin/true", "x")]
    windows = replace(BASE, os="windows")
    assert run_argv(df.stages[0].instructions[0], windows) == ("cmd", "/S", "/C", "#!/bin/sh\necho a\n")
    assert default_shell("linux") == ("/bin/sh", "-c")


def test_step_errors_are_located():
    df = parse_dockerfile(b"FROM busybox\nARG S=SIGNOPE\nSTOPSIGNAL $S\n")
    with pytest.raises(DockerfileError) as err:
        plan_stage(df, df.stages[0], make_plan_context(df), base_image=BASE)
    assert err.value.message == "invalid signal: SIGNOPE" and err.value.span.line == 3
    df = parse_dockerfile(b"FROM busybox\nVOLUME $EMPTY\n")
    with pytest.raises(DockerfileError, match="VOLUME specified can not be an empty string"):
        plan_stage(df, df.stages[0], make_plan_context(df), base_image=BASE)
    df = parse_dockerfile(b"FROM busybox\nEXPOSE 80/xyz\n")
    with pytest.raises(DockerfileError, match='invalid proto: xyz'):
        plan_stage(df, df.stages[0], make_plan_context(df), base_image=BASE)
    for good in ("9", "SIGKILL", "kill", "RTMIN+3", "SIGRTMAX-2"):
        assert parse_signal(good) == good
    for bad in ("0", "SIGFOO", "RTMIN+16", ""):
        with pytest.raises(ValueError):
            parse_signal(bad)


def test_base_config_is_required_for_an_image_base():
    df = dockerfile("env")
    with pytest.raises(ValueError, match="busybox"):
        plan_stage(df, df.stages[0], make_plan_context(df))


def test_commit_and_step_plan_invariants():
    df = parse_dockerfile(b"FROM busybox\nENV A=1\nRUN true\n")
    ctx = make_plan_context(df)
    start = start_stage(df, df.stages[0], ctx, base_image=BASE)
    env = plan_step(start.state, start.config, df.stages[0].instructions[0], ctx)
    assert not env.needs_layer and env.commit() is env.config and env.config.history[-1] == env.history
    run = plan_step(env.state, env.config, df.stages[0].instructions[1], ctx)
    assert run.needs_layer and run.config.history == env.config.history
    with pytest.raises(ValueError):
        run.commit()
    done = run.commit("sha256:" + "1" * 64)
    assert done.diff_ids[-1] == "sha256:" + "1" * 64 and done.history[-1].created_by.startswith("RUN ")
    assert run.key_args == () and env.key_args == ()


def test_finalize_result_labels_and_platform():
    config = finalize_result(BASE, labels={"a": "b"}, platform=Platform("linux", "arm64", "v8"))
    assert config.config.labels == {"a": "b"} and (config.architecture, config.variant) == ("arm64", "v8")


# ----------------------------------------------------------------------------------------------
# Go formatting


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (1, "1ns"), (1500, "1.5µs"), (250_000_000, "250ms"), (1_500_000_000, "1.5s"),
    (90 * 10**9, "1m30s"), (3600 * 10**9, "1h0m0s"), (-5 * 10**9, "-5s"), (3 * 10**9 + 1, "3.000000001s"),
    (100 * 3600 * 10**9 + 61 * 10**9, "100h1m1s"),
])
def test_go_duration(ns, text):
    assert hist.go_duration(ns) == text


@pytest.mark.parametrize("value, text", [
    (0, "'\\x00'"), (5, "'\\x05'"), (65, "'A'"), (10, "'\\n'"), (39, "'\\''"), (92, "'\\\\'"), (127, "'\\x7f'"),
    (0xE9, "'é'"), (0x85, "'\\u0085'"), (0xD800, "'�'"), (-1, "'�'"), (0x110000, "'�'"),
])
def test_go_quote_rune(value, text):
    assert hist.go_quote_rune(value) == text


def test_go_lists():
    assert hist.go_quote_list(["a b", 'q"']) == '["a b" "q\\""]'
    assert hist.go_quote_list(None) == "[]" and hist.go_list(()) == "[]"
    assert hist.go_list(["/a", "/b c"]) == "[/a /b c]"


# ----------------------------------------------------------------------------------------------
# times: the exporter's rules and SOURCE_DATE_EPOCH


T0, T1, T2 = 1_600_000_000 * 10**9, 1_700_000_000 * 10**9, 1_700_000_100 * 10**9


def _history_config(entries, layers: int) -> ImageConfig:
    diff_ids = tuple("sha256:" + f"{i:064x}" for i in range(layers))
    return ImageConfig(architecture="amd64", os="linux", rootfs=RootFS(diff_ids=diff_ids), history=tuple(entries))


def test_finalize_without_epoch_uses_layer_times():
    base = History(created="2020-01-01T00:00:00Z", comment="base")
    entries = [base, hist.entry("ENV A=1"), hist.entry("RUN a", layer=True), hist.entry("LABEL b"),
               hist.entry("RUN b", layer=True), hist.entry("CMD []")]
    done = hist.finalize_history(_history_config(entries, 3), layer_times=[T0, T1, T2])
    times = [h.created for h in done.history]
    t1, t2 = hist.epoch_timestamp(T1 // 10**9), hist.epoch_timestamp(T2 // 10**9)
    # the first metadata entry gets the first new layer's time, later ones the time before them
    assert times == ["2020-01-01T00:00:00Z", t1, t1, t1, t2, t2]
    assert done.created == t2


def test_finalize_with_epoch_clamps_after_the_base():
    base_entry = History(created="2030-01-01T00:00:00Z", comment="base")
    entries = [base_entry, hist.entry("ENV A=1", created=hist.epoch_timestamp(100)),
               hist.entry("RUN a", layer=True, created=hist.epoch_timestamp(100))]
    done = hist.finalize_history(_history_config(entries, 2), epoch=100, base_history=[base_entry],
                                 layer_times=[T0, T1])
    assert [h.created for h in done.history] == ["2030-01-01T00:00:00Z", "1970-01-01T00:01:40Z",
                                                 "1970-01-01T00:01:40Z"]
    assert done.created == "1970-01-01T00:01:40Z"
    # an entry without time after the base, and a config time later than the epoch, are clamped too
    late = replace(_history_config([base_entry, hist.entry("LABEL x")], 1), created="2031-01-01T00:00:00Z")
    done = hist.finalize_history(late, epoch=100, base_history=[base_entry])
    assert done.history[1].created == "1970-01-01T00:01:40Z" and done.created == "1970-01-01T00:01:40Z"


def test_finalize_fixes_layer_count_mismatches():
    entries = [hist.entry("RUN a", layer=True), hist.entry("RUN b", layer=True)]
    fewer = hist.finalize_history(_history_config(entries, 1), now=T0)
    assert [h.empty_layer for h in fewer.history] == [False, True]
    more = hist.finalize_history(_history_config(entries, 3), now=T0)
    assert more.history[-1].comment == hist.EXPORTER_COMMENT and not more.history[-1].empty_layer


def test_epoch_from_build_arg_or_global_arg_sets_history_times():
    df = parse_dockerfile(b"ARG SOURCE_DATE_EPOCH=1577836800\nFROM busybox\nENV A=1\nRUN true\n")
    ctx = make_plan_context(df)
    assert ctx.epoch == 1577836800
    plan = plan_stage(df, df.stages[0], ctx, base_image=BASE, layer=fake_diff)
    assert [h.created for h in plan.config.history[1:]] == ["2020-01-01T00:00:00Z"] * 2
    assert make_plan_context(df, {"SOURCE_DATE_EPOCH": "0"}).epoch == 0
    assert make_plan_context(df, {"SOURCE_DATE_EPOCH": ""}).epoch is None
    with pytest.raises(DockerfileError, match="context"):
        make_plan_context(df, {"SOURCE_DATE_EPOCH": "context"})
    final = hist.finalize_history(plan.config, epoch=ctx.epoch, base_history=BASE.history)
    assert parse_timestamp(final.created) == 1577836800 * 10**9


def test_keys_outside_the_image_spec_are_not_inherited_from_a_base_image():
    """BuildKit reads a base config into typed fields: docker's extra container keys and any unknown
    top-level key (an inline build cache, say) do not reach images built on it."""
    from builder.build.configstep import base_image_config
    from builder.image.config import ImageConfig

    base = ImageConfig.from_dict({
        "architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z",
        "pybuild.cache.v1": {"entries": []}, "container": "abc",
        "config": {"Env": ["PATH=/bin"], "Hostname": "h", "Image": "sha256:x", "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": []}})
    started = base_image_config(base).to_dict()
    assert "pybuild.cache.v1" not in started and "container" not in started and "created" not in started
    assert started["config"] == {"Env": ["PATH=/bin"], "Cmd": ["sh"]}
