"""ARG/ENV scoping, FROM resolution and word expansion (builder.dockerfile.evaluate).

Expected behaviour is BuildKit's dockerfile2llb (convert.go dispatch/dispatchArg/buildMetaArgs,
platform.go defaultArgs, instructions/commands.go Expand methods), read from the BuildKit mirror.
"""

from __future__ import annotations

import dataclasses

import pytest

from builder.dockerfile.evaluate import (
    DEFAULT_PATH_UNIX, BaseImageConfig, Env, Platform, PlatformError, builtin_args, dispatch, evaluate_dockerfile,
    expand_instruction, host_platform, make_context, parse_expose_ports, parse_image_reference,
    parse_onbuild_triggers, parse_platform, proxy_env, resolve_from, split_port_spec, start_stage,
)
from builder.dockerfile.expand import ShellLexer
from builder.dockerfile.instructions import (
    AddInstruction, ArgDefinition, CmdInstruction, EntrypointInstruction, EnvInstruction, ExposeInstruction,
    HealthcheckInstruction, KeyValue, LabelInstruction, MaintainerInstruction, OnbuildInstruction,
    ShellInstruction, SourceContent, parse_dockerfile,
)
from builder.dockerfile.runmount import Mount
from builder.errors import DockerfileError, ExpansionError, Span

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")
LEX = ShellLexer("\\")


def evaluate(src: str, build_args=None, **kw):
    return evaluate_dockerfile(parse_dockerfile(src), build_args, build_platform=AMD64, **kw)


def final_env(src: str, build_args=None, stage: int = -1, **kw) -> dict:
    return dict(evaluate(src, build_args, **kw).stages[stage].final.env)


def only(src: str):
    """The one instruction after FROM."""
    return parse_dockerfile("FROM scratch\n" + src).stages[0].instructions[0]


def fields(instruction) -> dict:
    return {f.name: getattr(instruction, f.name) for f in dataclasses.fields(instruction) if f.name != "node"}


def changed(before, after) -> set:
    a, b = fields(before), fields(after)
    return {k for k in a if a[k] != b[k]}


ENV = {"A": "aa", "B": "bb", "X": "x y"}


# -- built-in and proxy args ------------------------------------------------------------------

def test_builtin_args_for_host_and_target():
    env = builtin_args(AMD64, Platform("linux", "arm", "v7"), {}, "")
    assert dict(env) == {
        "BUILDPLATFORM": "linux/amd64", "BUILDOS": "linux", "BUILDOSVERSION": "", "BUILDARCH": "amd64",
        "BUILDVARIANT": "", "TARGETPLATFORM": "linux/arm/v7", "TARGETOS": "linux", "TARGETOSVERSION": "",
        "TARGETARCH": "arm", "TARGETVARIANT": "v7", "TARGETSTAGE": "default",
    }
    assert list(env)[0] == "BUILDPLATFORM" and list(env)[-1] == "TARGETSTAGE"


def test_builtin_args_overridden_by_build_args_and_target_stage():
    env = builtin_args(AMD64, AMD64, {"TARGETARCH": "riscv64", "OTHER": "x"}, "final")
    assert env["TARGETARCH"] == "riscv64" and env["TARGETSTAGE"] == "final" and "OTHER" not in env


def test_builtin_args_os_version_in_target_platform():
    env = builtin_args(AMD64, Platform("windows", "amd64", os_version="10.0.20348"), {}, "")
    assert env["TARGETPLATFORM"] == "windows(10.0.20348)/amd64"
    assert env["TARGETOSVERSION"] == "10.0.20348"


def test_target_stage_defaults_to_last_stage_name():
    ctx = make_context(parse_dockerfile("FROM scratch AS a\nFROM scratch AS final\n"))
    assert ctx.global_args.env["TARGETSTAGE"] == "final"
    ctx = make_context(parse_dockerfile("FROM scratch AS a\nFROM scratch\n"))
    assert ctx.global_args.env["TARGETSTAGE"] == "default"


def test_host_platform_is_normalized():
    p = host_platform()
    assert p.os == "linux" and p.architecture in ("amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64")


def test_proxy_env_from_build_args():
    assert proxy_env({"HTTP_PROXY": "http://p:3128", "no_proxy": "localhost", "OTHER": "x", "ftp_proxy": None}) == (
        ("HTTP_PROXY", "http://p:3128"), ("http_proxy", "http://p:3128"),
        ("NO_PROXY", "localhost"), ("no_proxy", "localhost"))
    assert proxy_env({"HTTP_PROXY": "upper", "http_proxy": "lower"})[:2] == (
        ("HTTP_PROXY", "lower"), ("http_proxy", "lower"))


def test_proxy_args_are_not_in_the_expansion_env():
    src = "FROM scratch\nENV P=${HTTP_PROXY:-none}\n"
    assert final_env(src, {"HTTP_PROXY": "http://p"})["P"] == "none"
    src = "FROM scratch\nARG HTTP_PROXY\nENV P=$HTTP_PROXY\n"
    assert final_env(src, {"HTTP_PROXY": "http://p"})["P"] == "http://p"


# -- platforms --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,expected", [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/arm64", Platform("linux", "arm64")),
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ("linux/aarch64", Platform("linux", "arm64")),
    ("linux/arm", Platform("linux", "arm")),
    ("linux/arm/v6", Platform("linux", "arm", "v6")),
    ("linux/arm/7", Platform("linux", "arm", "v7")),
    ("Linux/x86_64", Platform("linux", "amd64")),
    ("windows(10.0.17763)/amd64", Platform("windows", "amd64", os_version="10.0.17763")),
    ("arm64", Platform("linux", "arm64")),
])
def test_parse_platform(spec, expected):
    assert parse_platform(spec) == expected


@pytest.mark.parametrize("spec,message", [
    ("linux/", '"" is an invalid component of "linux/": platform specifier component must match '
               '"^[A-Za-z0-9_.-]+$": invalid argument'),
    ("linux/*", '"linux/*": wildcards not yet supported: invalid argument'),
    ("bogus", '"bogus": unknown operating system or architecture: invalid argument'),
    ("a/b/c/d", '"a/b/c/d": cannot parse platform specifier: invalid argument'),
    ("li nux/amd64", '"li nux" is an invalid OS component of "li nux/amd64": OSAndVersion specifier component '
                     'must match "^([A-Za-z0-9_-]+)(?:\\\\(([A-Za-z0-9_.%-]*)((?:\\\\+[A-Za-z0-9_.%-]+)*)\\\\))?$": '
                     'invalid argument'),
])
def test_parse_platform_errors(spec, message):
    with pytest.raises(PlatformError) as info:
        parse_platform(spec)
    assert str(info.value) == message


def test_platform_format():
    assert Platform("linux", "arm", "v7").format() == "linux/arm/v7"
    assert Platform("windows", "amd64", os_version="10.0").format() == "windows/amd64"
    assert Platform("windows", "amd64", os_version="10.0").format_all() == "windows(10.0)/amd64"


# -- Env --------------------------------------------------------------------------------------

def test_env_replace_moves_key_to_end_and_is_immutable():
    env = Env({"A": "1", "B": "2"})
    new = env.set("A", "3")
    assert list(new.items()) == [("B", "2"), ("A", "3")]
    assert dict(env) == {"A": "1", "B": "2"}
    assert new.to_list() == ["B=2", "A=3"]
    assert Env([("A", "1")]) == {"A": "1"}


# -- global (meta) ARGs and FROM --------------------------------------------------------------

def test_meta_args_in_from_and_build_arg_override():
    src = "ARG IMG=alpine\nARG TAG=3.${MINOR:-19}\nFROM ${IMG}:${TAG}\n"
    assert evaluate(src).stages[0].base_name == "alpine:3.19"
    assert evaluate(src, {"TAG": "edge"}).stages[0].base_name == "alpine:edge"
    assert evaluate(src, {"MINOR": "20"}).stages[0].base_name == "alpine:3.19"  # MINOR is not declared


def test_meta_arg_build_arg_value_is_not_expanded():
    src = "ARG A=1\nARG B=$A\nFROM busybox:$B\n"
    assert evaluate(src, {"B": "$A"}).stages[0].base_name == "busybox:$A"
    assert evaluate(src).stages[0].base_name == "busybox:1"


def test_meta_args_see_previous_meta_args_and_builtins():
    src = "ARG A=x\nARG B=${A}-${TARGETARCH}\nFROM scratch\nARG B\nENV B2=$B\n"
    assert final_env(src)["B2"] == "x-amd64"


def test_meta_arg_without_value_or_with_none_build_arg():
    src = "ARG V\nFROM busybox${V:+:}${V}\n"
    assert evaluate(src).stages[0].base_name == "busybox"
    assert evaluate(src, {"V": None}).stages[0].base_name == "busybox"
    assert evaluate(src, {"V": "1.36"}).stages[0].base_name == "busybox:1.36"


def test_meta_arg_expansion_error_is_located():
    with pytest.raises(ExpansionError) as info:
        evaluate("ARG OK=1\nARG A=${B:?needed}\nFROM scratch\n")
    assert info.value.span == Span(2) and info.value.message == 'failed to process "${B:?needed}": B: needed'
    assert info.value.source_lines is not None


def test_from_platform_expanded_with_global_args():
    ev = evaluate("ARG P=linux/arm64\nFROM --platform=$P scratch AS a\nFROM --platform=$BUILDPLATFORM scratch\n")
    assert ev.stages[0].platform == ARM64
    assert ev.stages[1].platform == AMD64
    assert ev.froms[0].platform_match.matched == frozenset({"P"})


def test_from_default_platform_is_target_platform():
    ev = evaluate("FROM scratch\n", target_platform=ARM64)
    assert ev.stages[0].platform == ARM64
    assert ev.context.global_args.env["TARGETPLATFORM"] == "linux/arm64"


def test_from_does_not_see_stage_env_or_undeclared_build_args():
    src = "FROM scratch AS a\nENV IMG=alpine\nFROM ${IMG:-busybox}\n"
    assert evaluate(src, {"IMG": "debian"}).stages[1].base_name == "busybox"


@pytest.mark.parametrize("src,message", [
    ("ARG E\nFROM $E\n", "base name ($E) should not be blank"),
    ("FROM --platform=$BULIDPLATFORM scratch\n",
     "empty platform value from expression $BULIDPLATFORM (did you mean BUILDPLATFORM?)"),
    ("ARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} busybox\n",
     'failed to parse platform linux/${MYARCH}: "" is an invalid component of "linux/": platform specifier '
     'component must match "^[A-Za-z0-9_.-]+$": invalid argument (did you mean MY_ARCH?)'),
    ("FROM ${x\n", 'failed to process "${x": unsupported modifier (\ufffd) in substitution'),
])
def test_from_errors(src, message):
    with pytest.raises(DockerfileError) as info:
        evaluate(src)
    assert info.value.message == message
    assert info.value.span.line == src.count("\n")


def test_resolve_from_directly():
    df = parse_dockerfile("ARG V=1\nFROM img:$V AS x\n")
    ctx = make_context(df)
    resolved = resolve_from(df.stages[0], ctx.global_args, ctx.lexer)
    assert resolved.base_name == "img:1" and resolved.platform is None
    assert resolved.base_match.matched == frozenset({"V"})


# -- stage ARG / ENV scoping ------------------------------------------------------------------

def test_stage_arg_value_precedence():
    src = "ARG G=global\nFROM scratch\nARG G\nARG D=default\nARG N\nENV OUT=$G-$D-${N-unset}\n"
    assert final_env(src)["OUT"] == "global-default-unset"
    assert final_env(src, {"G": "b1", "D": "b2", "N": "b3"})["OUT"] == "b1-b2-b3"


def test_global_arg_needs_declaration_in_stage():
    src = "ARG G=global\nFROM scratch\nENV OUT=${G:-none}\n"
    assert final_env(src)["OUT"] == "none"


def test_stage_arg_with_default_ignores_global_value():
    assert final_env("ARG G=global\nFROM scratch\nARG G=local\nENV OUT=$G\n")["OUT"] == "local"


def test_stage_arg_build_arg_is_not_expanded_and_default_is():
    src = "FROM scratch\nENV E=env\nARG A=$E\nENV OUT=$A\n"
    assert final_env(src)["OUT"] == "env"
    assert final_env(src, {"A": "$E"})["OUT"] == "$E"


def test_builtin_args_need_arg_in_stage():
    src = "FROM scratch\nENV BEFORE=${TARGETARCH:-unset}\nARG TARGETARCH\nENV AFTER=$TARGETARCH\n"
    env = final_env(src, target_platform=ARM64)
    assert env["BEFORE"] == "unset" and env["AFTER"] == "arm64"


def test_arg_without_any_value_is_not_an_env_var():
    ev = evaluate("FROM scratch\nARG N\n")
    state = ev.stages[0].final
    assert "N" not in state.env and state.arg("N").value is None and "N" in state.arg_names


def test_env_substitutions_see_env_before_the_instruction():
    env = final_env("FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$def\n")
    assert env["abc"] == "bye" and env["def"] == "hello" and env["ghi"] == "hello"


def test_arg_definitions_see_previous_definitions_of_same_instruction():
    # dispatchArg re-reads the stage env for each definition (unlike ENV).
    env = final_env("FROM scratch\nARG a=1 b=$a\n")
    assert env["b"] == "1"


def test_arg_after_env_overrides_run_env_but_not_image_config():
    ev = evaluate("FROM scratch\nENV V=env\nARG V=arg\nENV OUT=$V\n")
    final = ev.stages[0].final
    assert final.env["V"] == "arg" and final.env["OUT"] == "arg"
    assert dict(final.config_env)["V"] == "env"


def test_env_after_arg_wins():
    ev = evaluate("FROM scratch\nARG V=arg\nENV V=env\n", {"V": "given"})
    assert ev.stages[0].final.env["V"] == "env"


def test_arg_without_value_after_env_keeps_env():
    assert final_env("FROM scratch\nENV V=env\nARG V\n")["V"] == "env"


def test_arg_values_are_not_in_config_env():
    ev = evaluate("FROM scratch\nARG A=1\nENV B=2\n")
    assert ev.stages[0].final.config_env == (("PATH", DEFAULT_PATH_UNIX), ("B", "2"))


def test_stage_from_stage_inherits_env_and_args():
    src = ("FROM scratch AS base\nARG A=1\nARG U\nENV E=2\n"
           "FROM base AS child\nENV OUT=$A-$E\n"
           "FROM scratch\nENV OUT=${A:-none}-${E:-none}\n")
    ev = evaluate(src)
    child, other = ev.stages[1], ev.stages[2]
    assert child.parent == 0 and other.parent is None
    assert child.final.env["OUT"] == "1-2" and {"A", "U"} <= child.final.arg_names
    assert other.final.env["OUT"] == "none-none" and not other.final.arg_names


def test_stage_from_stage_reapplies_image_env_over_arg():
    src = "FROM scratch AS a\nENV FOO=env\nARG FOO=arg\nFROM a\nENV OUT=$FOO\n"
    ev = evaluate(src)
    assert ev.stages[0].final.env["FOO"] == "arg"
    assert ev.stages[1].final.env["OUT"] == "env"


def test_stage_reference_uses_expanded_base_name_and_earlier_stages_only():
    src = "ARG B=builder\nFROM scratch AS builder\nENV X=1\nFROM ${B}\nENV OUT=$X\n"
    assert evaluate(src).stages[1].parent == 0
    ev = evaluate("FROM later AS first\nFROM scratch AS later\n")
    assert ev.stages[0].parent is None


def test_stage_inherits_platform_of_parent():
    ev = evaluate("FROM --platform=linux/arm64 scratch AS a\nFROM a\n")
    assert ev.stages[1].platform == ARM64


def test_default_path_and_base_env():
    assert final_env("FROM scratch\n") == {"PATH": DEFAULT_PATH_UNIX}
    ev = evaluate("FROM python:3\nENV OUT=$PYTHON_VERSION\n",
                  base_images={"python:3": {"PYTHON_VERSION": "3.12", "PATH": "/usr/local/bin:/bin"}})
    assert dict(ev.stages[0].final.env) == {"PYTHON_VERSION": "3.12", "PATH": "/usr/local/bin:/bin",
                                            "OUT": "3.12"}
    ev = evaluate("FROM img\n", base_images=lambda name: ["LANG=C.UTF-8", "EMPTY="])
    assert ev.stages[0].final.config_env == (("LANG", "C.UTF-8"), ("EMPTY", ""), ("PATH", DEFAULT_PATH_UNIX))


def test_scratch_gets_no_base_env_and_windows_no_path():
    ev = evaluate("FROM scratch\n", base_images=lambda name: {"X": "1"})
    assert dict(ev.stages[0].final.env) == {"PATH": DEFAULT_PATH_UNIX}
    state = start_stage(Platform("windows", "amd64"), {"X": "1"})
    assert dict(state.env) == {"X": "1"}


def test_base_image_onbuild_and_in_file_onbuild_triggers_run_first():
    src = ("FROM scratch AS base\nENV A=1\nONBUILD ENV FROM_BASE=$A\nONBUILD ARG T=t\n"
           "FROM base\nENV OUT=$FROM_BASE-$T\n")
    stage = evaluate(src).stages[1]
    assert [s.from_onbuild for s in stage.steps] == [True, True, False]
    assert [s.before.env.get("A") for s in stage.steps][:1] == ["1"]
    assert stage.steps[0].instruction.span == Span(5)
    assert stage.final.env["OUT"] == "1-t"
    config = BaseImageConfig(env=(("A", "img"),), onbuild=("ENV FROM_IMAGE=$A",))
    assert final_env("FROM img\n", base_images={"img": config})["FROM_IMAGE"] == "img"


def test_onbuild_trigger_errors_are_located_at_the_from():
    with pytest.raises(DockerfileError) as info:
        parse_onbuild_triggers(["RUNN x"], Span(7, 0, 8, 0))
    assert info.value.span == Span(7, 0, 8, 0) and "unknown instruction: RUNN" in info.value.message
    with pytest.raises(DockerfileError) as info:
        parse_onbuild_triggers(["FROM x"], Span(2))
    assert info.value.message == "FROM isn't allowed as an ONBUILD trigger"


def test_escape_directive_is_used_for_expansion():
    env = final_env("# escape=`\nFROM scratch\nENV A=1\nENV B=`$A C=c:\\$A\n")
    assert env["B"] == "$A" and env["C"] == "c:\\1"


# -- expand_instruction: exactly the fields BuildKit expands ----------------------------------

def test_expand_env_and_label_keys_and_values():
    for keyword, kind in (("ENV", EnvInstruction), ("LABEL", LabelInstruction)):
        instruction = only(f'{keyword} $A=$B "k-$A"="${{X}}" plain=\'$A\'\n')
        assert type(instruction) is kind
        result = expand_instruction(instruction, ENV, LEX).instruction
        assert result.pairs == (KeyValue("aa", "bb"), KeyValue("k-aa", "x y"), KeyValue("plain", "$A"))
        assert changed(instruction, result) == {"pairs"}


def test_expand_legacy_env_value():
    result = expand_instruction(only("ENV K $A and $B\n"), ENV, LEX).instruction
    assert result.pairs == (KeyValue("K", "aa and bb", legacy=True),)


def test_expand_copy_fields():
    instruction = only("COPY --from=stage --chown=$A:$B --chmod=$B --link --exclude=$A --parents src/$A $X /dst/$B/\n")
    result = expand_instruction(instruction, ENV, LEX).instruction
    assert result.sources == ("src/aa", "x y") and result.dest == "/dst/bb/"
    assert result.chown == "aa:bb" and result.chmod == "bb"
    assert result.from_ == "stage" and result.excludes == ("$A",) and result.link and result.parents
    assert changed(instruction, result) == {"sources", "dest", "chown", "chmod"}


def test_expand_add_fields_including_checksum():
    instruction = only("ADD --chown=$A --chmod=$B --checksum=sha256:$A --keep-git-dir --unpack=true --exclude=$B "
                       "https://x/$A /d/$B\n")
    result = expand_instruction(instruction, ENV, LEX).instruction
    assert type(result) is AddInstruction
    assert (result.sources, result.dest, result.chown, result.chmod, result.checksum) == (
        ("https://x/aa",), "/d/bb", "aa", "bb", "sha256:aa")
    assert result.excludes == ("$B",)
    assert changed(instruction, result) == {"sources", "dest", "chown", "chmod", "checksum"}


def test_copy_heredoc_expanded_only_with_unquoted_delimiter():
    src = ("COPY <<EOT <<'RAW' <<\"DQ\" /dst/\n"
           "a=$A \"q\" 'b' \\$B ${X}\nEOT\n"
           "raw=$A\nRAW\n"
           "dq=$A\nDQ\n")
    instruction = only(src)
    result = expand_instruction(instruction, ENV, LEX)
    assert result.instruction.contents == (
        SourceContent("EOT", "a=aa \"q\" 'b' $B x y\n", True),
        SourceContent("RAW", "raw=$A\n", False),
        SourceContent("DQ", "dq=$A\n", False))


def test_add_heredoc_expansion_and_backtick_escape_does_not_apply():
    df = parse_dockerfile("# escape=`\nFROM scratch\nADD <<EOT /f\nv=\\$A $A\nEOT\n")
    result = expand_instruction(df.stages[0].instructions[0], ENV, ShellLexer("`")).instruction
    assert result.contents == (SourceContent("EOT", "v=$A aa\n", True),)


def test_expand_run_only_mounts():
    instruction = only("RUN --mount=type=$T,target=/c/$A,id=$B,sharing=locked --network=none echo $A ${B}\n")
    result = expand_instruction(instruction, {**ENV, "T": "cache"}, LEX)
    run = result.instruction
    assert run.command == ("echo $A ${B}",)
    assert run.mounts == (Mount(type="cache", target="/c/aa", cache_id="bb", sharing="locked", readonly=False),)
    assert changed(instruction, run) == {"mounts"}
    assert result.matched == frozenset({"T", "A", "B"})


def test_run_heredoc_and_exec_form_not_expanded():
    instruction = only("RUN <<EOF\necho $A\nEOF\n")
    assert expand_instruction(instruction, ENV, LEX).instruction is instruction
    instruction = only('RUN ["echo", "$A"]\n')
    assert expand_instruction(instruction, ENV, LEX).instruction is instruction


def test_run_mount_errors_are_located():
    instruction = only("RUN --mount=type=$T,target=/x true\n")
    with pytest.raises(DockerfileError) as info:
        expand_instruction(instruction, {"T": "bogus"}, LEX)
    assert info.value.span == Span(2) and info.value.message.startswith('unsupported mount type "bogus"')


@pytest.mark.parametrize("src,field,expected", [
    ("WORKDIR /w/$A\n", "path", "/w/aa"),
    ("USER $A:$B\n", "user", "aa:bb"),
    ("STOPSIGNAL SIG$A\n", "signal", "SIGaa"),
    ("VOLUME /v/$A $X\n", "volumes", ("/v/aa", "x y")),
    ('VOLUME ["/v/$A", "/w"]\n', "volumes", ("/v/aa", "/w")),
])
def test_expand_single_value_instructions(src, field, expected):
    instruction = only(src)
    result = expand_instruction(instruction, ENV, LEX).instruction
    assert getattr(result, field) == expected
    assert changed(instruction, result) == {field}


def test_expose_words_split_after_expansion_without_lookups():
    instruction = only("EXPOSE $PORTS 9000/$PROTO\n")
    result = expand_instruction(instruction, {"PORTS": "80 443/udp", "PROTO": "tcp"}, LEX)
    assert result.instruction.ports == ("80", "443/udp", "9000/tcp")
    assert result.lookups == () and result.unmatched == frozenset()
    assert type(result.instruction) is ExposeInstruction


@pytest.mark.parametrize("src,kind", [
    ("CMD echo $A\n", CmdInstruction),
    ('CMD ["echo", "$A"]\n', CmdInstruction),
    ("ENTRYPOINT echo $A\n", EntrypointInstruction),
    ('SHELL ["/bin/$A", "-c"]\n', ShellInstruction),
    ("HEALTHCHECK --interval=5s CMD curl $A\n", HealthcheckInstruction),
    ("MAINTAINER $A\n", MaintainerInstruction),
    ("ONBUILD RUN echo $A\n", OnbuildInstruction),
    ("ONBUILD COPY $A /b\n", OnbuildInstruction),
])
def test_not_expanded_instructions(src, kind):
    instruction = only(src)
    assert type(instruction) is kind
    result = expand_instruction(instruction, ENV, LEX)
    assert result.instruction is instruction and result.lookups == ()


def test_expand_arg_defaults_not_keys():
    instruction = only("ARG $A=$B N\n")
    result = expand_instruction(instruction, ENV, LEX).instruction
    assert result.args == (ArgDefinition("$A", "bb"), ArgDefinition("N", None))


def test_expand_from_fields():
    df = parse_dockerfile("FROM --platform=$P img:$A AS x\n")
    result = expand_instruction(df.stages[0].from_, {"P": "linux/arm64", "A": "1"}, LEX).instruction
    assert (result.base_name, result.platform, result.stage_name) == ("img:1", "linux/arm64", "x")


def test_lookups_per_word_for_undefined_var():
    instruction = only("COPY --chown=$U $U ${V:-x} $W /d/$A\n")
    result = expand_instruction(instruction, {"A": "1"}, LEX)
    assert result.lookups == (frozenset({"U"}), frozenset(), frozenset({"U"}), frozenset({"V"}), frozenset({"W"}),
                              frozenset())
    assert result.unmatched == frozenset({"U", "V", "W"}) and result.matched == frozenset({"A"})


def test_expansion_errors_are_located():
    instruction = parse_dockerfile("FROM scratch\n\nENV a=1 \\\n  b=\"${x:?must be set}\"\n").stages[0].instructions[0]
    with pytest.raises(ExpansionError) as info:
        expand_instruction(instruction, {}, LEX)
    assert info.value.span == Span(3, 0, 4, 0)
    assert info.value.message == 'failed to process "\\"${x:?must be set}\\"": x: must be set'


# -- dispatch and steps -----------------------------------------------------------------------

def test_dispatch_steps_record_undefined_names_except_declared_args():
    src = "FROM scratch\nARG D\nCOPY $D $U $U /x\nARG E=$D$F\nRUN --mount=target=/$M true\n"
    steps = evaluate(src).stages[0].steps
    assert [s.undefined for s in steps] == [(), ("U", "U"), ("F",), ("M",)]
    assert steps[2].instruction.args == (ArgDefinition("E", ""),)


def test_dispatch_non_env_args_never_become_env():
    src = "FROM scratch\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nENV OUT=${BUILDKIT_SBOM_SCAN_STAGE:-unset}\n"
    state = evaluate(src).stages[0].final
    assert state.env["OUT"] == "unset" and state.arg("BUILDKIT_SBOM_SCAN_STAGE").value == "true"
    assert evaluate(src).stages[0].steps[1].undefined == ()


def test_dispatch_directly():
    df = parse_dockerfile("FROM scratch\nENV A=1\n")
    ctx = make_context(df)
    state = start_stage(AMD64)
    step = dispatch(state, df.stages[0].instructions[0], ctx)
    assert step.before is state and step.after.env["A"] == "1" and dict(step.after.config_env)["A"] == "1"


# -- EXPOSE ports and image references --------------------------------------------------------

def test_parse_expose_ports():
    assert parse_expose_ports(["80", "443/UDP", "8000-8002/tcp", "127.0.0.1:80:81", "[::1]:90:90"]) == (
        "80/tcp", "443/udp", "8000/tcp", "8001/tcp", "8002/tcp", "81/tcp", "90/tcp")
    spec = split_port_spec("1.2.3.4:5000:5000/TCP")
    assert (spec.ip, spec.host_port, spec.container_port, spec.proto) == ("1.2.3.4", "5000", "5000", "TCP")


@pytest.mark.parametrize("raw,message", [
    ("80/foo", 'invalid port: "80/foo": invalid proto: foo'),
    ("/tcp", 'invalid port: "/tcp": no port specified'),
    ("70000", "invalid containerPort: 70000"),
    ("9-8", "invalid containerPort: 9-8"),
    ("abc:80", "invalid hostPort: abc"),
    ("999.1.1.1:80:80", "invalid IP address: 999.1.1.1"),
    ("80-81:90-95", "invalid ranges specified for container and host Ports: 90-95 and 80-81"),
])
def test_parse_expose_port_errors(raw, message):
    with pytest.raises(ValueError) as info:
        parse_expose_ports([raw])
    assert str(info.value) == message


@pytest.mark.parametrize("text,expected", [
    ("busybox", "docker.io/library/busybox"),
    ("busybox:latest", "docker.io/library/busybox:latest"),
    ("localhost:5000/a/b:1", "localhost:5000/a/b:1"),
    ("ghcr.io/o/r@sha256:" + "a" * 64, "ghcr.io/o/r@sha256:" + "a" * 64),
    ("scratch", "docker.io/library/scratch"),
])
def test_parse_image_reference(text, expected):
    assert str(parse_image_reference(text)) == expected


@pytest.mark.parametrize("text", ["", "busybox:", "Busybox", "busy:box:latest", "a" * 64, "x@sha256:abc",
                                  "name/UPPER", "-bad"])
def test_parse_image_reference_invalid(text):
    with pytest.raises(ValueError):
        parse_image_reference(text)


def test_image_reference_tagged():
    assert str(parse_image_reference("alpine").tagged()) == "docker.io/library/alpine:latest"
