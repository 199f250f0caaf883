"""The instruction layer: typed values, flags, stages, as BuildKit's instructions package gives them."""

from __future__ import annotations

import pytest

from builder.dockerfile import instructions as ins
from builder.dockerfile.instructions import parse_dockerfile, parse_go_duration
from builder.errors import DockerfileError, InstructionError


def only(text: str):
    """The single instruction after FROM."""
    (stage,) = parse_dockerfile("FROM busybox\n" + text).stages
    (instruction,) = stage.instructions
    return instruction


def error_of(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(text)
    return info.value


def test_stages_meta_args_and_names():
    df = parse_dockerfile("ARG BASE=busybox\nARG TAG\nFROM $BASE:${TAG:-latest} AS Build\nRUN true\n"
                          "FROM build\nFROM --platform=$BUILDPLATFORM scratch\n")
    assert [a.args[0].key for a in df.meta_args] == ["BASE", "TAG"]
    assert df.meta_args[0].args[0].value == "busybox" and df.meta_args[1].args[0].value is None
    assert [s.display_name for s in df.stages] == ["build", "stage-1", "stage-2"]
    assert df.stages[0].from_.stage_name_as_written == "Build"
    assert df.stages[0].base_name == "$BASE:${TAG:-latest}"
    assert df.stages[2].platform == "$BUILDPLATFORM"
    assert df.stage("BUILD") is df.stages[0] and df.stage("1") is df.stages[1] and df.stage("nope") is None


def test_run_forms_flags_and_heredocs():
    run = only("RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none "
               "--security=insecure pip install x")
    assert run.command == ("pip install x",) and run.prepend_shell
    assert run.mounts == ("type=cache,target=/root/.cache", "type=secret,id=tok")
    assert (run.network, run.security) == ("none", "insecure")
    assert run.flags_used == {"mount", "network", "security"}
    exec_form = only('RUN ["echo", "a b"]')
    assert exec_form.command == ("echo", "a b") and not exec_form.prepend_shell
    heredoc = only("RUN <<EOF bash\nset -e\necho hi\nEOF")
    assert heredoc.files == (ins.InlineFile("EOF", "set -e\necho hi\n", False, True),)
    assert heredoc.command == ("<<EOF bash",)
    defaults = only("RUN true")
    assert (defaults.network, defaults.security, defaults.mounts) == ("default", "sandbox", ())


def test_cmd_entrypoint_shell():
    assert only("CMD echo $HOME").command == ("echo $HOME",)
    assert only('CMD ["a", "b"]').prepend_shell is False
    assert only("ENTRYPOINT []").command is None
    assert only('ENTRYPOINT ["/bin/app"]').command == ("/bin/app",)
    assert only('SHELL ["/bin/bash", "-o", "pipefail", "-c"]').shell == ("/bin/bash", "-o", "pipefail", "-c")


def test_env_label_pairs_keep_quotes_for_expansion_time():
    env = only('ENV a=1 b="two words" c=x\\ y')
    assert env.pairs == (ins.KeyValue("a", "1"), ins.KeyValue("b", '"two words"'), ins.KeyValue("c", "x\\ y"))
    legacy = only("ENV PATH /usr/bin:/bin extra")
    assert legacy.pairs == (ins.KeyValue("PATH", "/usr/bin:/bin extra", legacy=True),)
    assert only("LABEL a=b").pairs == (ins.KeyValue("a", "b"),)


def test_copy_and_add_flags():
    copy = only("COPY --from=build --chown=app:app --chmod=u+x --link --parents --exclude=*.md "
                "--exclude=tmp a b /dst/")
    assert (copy.from_, copy.chown, copy.chmod, copy.link, copy.parents) == ("build", "app:app", "u+x", True, True)
    assert copy.excludes == ("*.md", "tmp") and copy.sources == ("a", "b") and copy.dest == "/dst/"
    add = only("ADD --checksum=sha256:abc --keep-git-dir=false --unpack https://x/y.tgz /z")
    assert add.checksum == "sha256:abc" and add.keep_git_dir is False and add.unpack is True
    plain = only("ADD a b")
    assert plain.keep_git_dir is None and plain.unpack is None and plain.link is False
    assert only('COPY ["a b", "c"]').sources == ("a b",)


def test_copy_heredoc_sources():
    copy = only("COPY <<A <<-'B' /dst/\nalpha $X\nA\n\tbeta\n\tB")
    assert copy.sources == ()
    assert copy.contents == (ins.SourceContent("A", "alpha $X\n", True), ins.SourceContent("B", "beta\n", False))


def test_healthcheck_forms():
    hc = only("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --start-interval=1s --retries=5 CMD curl -f x")
    assert hc.test == ("CMD-SHELL", "curl -f x")
    assert (hc.interval, hc.timeout, hc.start_period, hc.start_interval, hc.retries) == (
        90_000_000_000, 500_000_000, 2_000_000_000, 1_000_000_000, 5)
    assert only('HEALTHCHECK CMD ["/check", "-q"]').test == ("CMD", "/check", "-q")
    assert only("HEALTHCHECK none").test == ("NONE",)
    assert only("HEALTHCHECK --interval=0 CMD x").interval == 0


def test_onbuild_keeps_trigger_text_and_heredocs():
    onbuild = only("ONBUILD RUN make install")
    assert onbuild.expression == "RUN make install" and onbuild.trigger == "RUN"
    with_heredoc = only("onbuild  RUN <<EOF\necho hi\nEOF")
    assert with_heredoc.expression == "RUN <<EOF\necho hi\nEOF"


def test_simple_instructions():
    assert only("WORKDIR /app").path == "/app"
    assert only("USER app:app").user == "app:app"
    assert only("VOLUME /a /b").volumes == ("/a", "/b")
    assert only('VOLUME ["/c"]').volumes == ("/c",)
    assert only("EXPOSE 8080/tcp 443 80").ports == ("443", "80", "8080/tcp")
    assert only("STOPSIGNAL SIGKILL").signal == "SIGKILL"
    assert only("MAINTAINER me <me@example.com>").maintainer == "me <me@example.com>"
    arg = only("ARG a b=c d=")
    assert arg.args == (ins.ArgDefinition("a", None), ins.ArgDefinition("b", "c"), ins.ArgDefinition("d", ""))


def test_flags_buildkit_ignores_on_arg_and_stopsignal():
    # BuildKit never parses ARG's or STOPSIGNAL's flags (nor HEALTHCHECK NONE's).
    assert only("ARG --whatever=1 a").args[0].key == "a"
    assert only("STOPSIGNAL --x 9").signal == "9"
    assert only("HEALTHCHECK --bogus NONE").test == ("NONE",)


@pytest.mark.parametrize("text, message", [
    ("FROM a\nCOPY --link=yes a b\n", "expecting boolean value for flag --link, not: yes"),
    ("FROM a\nCOPY --exclude a b\n", "missing a value on flag: --exclude"),
    ("FROM a\nRUN --mount=type=bind,from=${X}y true\n", "'from' doesn't support variable expansion"),
    ("FROM a\nRUN --mount=type=bind,from=trailing$ true\n", None),
    ("FROM a\nCOPY --chmod=1 --chmod=2 a b\n", "duplicate flag specified: --chmod"),
    ("FROM a\nWORKDIR\n", "WORKDIR requires exactly one argument"),
    ("FROM a\nRUN --device=gpu0,bogus=1 true\n", "unexpected key 'bogus' in 'bogus=1'"),
    ("FROM a\nENV a=b c\n", "Syntax error - can't find = in \"c\". Must be of the form: name=value"),
])
def test_instruction_errors(text, message):
    if message is None:
        parse_dockerfile(text)
        return
    err = error_of(text)
    assert message in err.message
    assert err.span is not None and err.span.line == 2


def test_error_types_and_suggestions():
    err = error_of("FROM a\nWORKDRI /x\n")
    assert isinstance(err, InstructionError)
    assert err.message == "unknown instruction: WORKDRI (did you mean WORKDIR?)"
    assert (err.span.line, err.span.column) == (2, 1)
    err = error_of("FROM a\nCOPY --chmown=1 a b\n")
    assert err.message == "unknown flag: --chmown (did you mean chown?)"


@pytest.mark.parametrize("text, nanos", [
    ("30s", 30_000_000_000), ("1m30s", 90_000_000_000), ("1.5h", 5_400_000_000_000), ("100us", 100_000),
    ("0", 0), ("2h45m", 9_900_000_000_000), (".5s", 500_000_000), ("1µs", 1000),
])
def test_go_durations(text, nanos):
    assert parse_go_duration(text) == nanos


@pytest.mark.parametrize("text, message", [
    ("5", 'time: missing unit in duration "5"'), ("5x", 'time: unknown unit "x" in duration "5x"'),
    ("", 'time: invalid duration ""'), ("abc", 'time: invalid duration "abc"'),
])
def test_go_duration_errors(text, message):
    with pytest.raises(ValueError) as info:
        parse_go_duration(text)
    assert str(info.value) == message


def test_escape_directive_applies_to_flags_and_words():
    df = parse_dockerfile('# escape=`\nFROM a\nCOPY --chown="a`"b c" --chmod=a\\b x `\n  y\n')
    (copy,) = df.stages[0].instructions
    assert df.escape == "`"
    assert copy.chown == 'a"b c' and copy.chmod == "a\\b" and copy.sources == ("x",) and copy.dest == "y"
    # An escaped quote is no quote: the flag word ends at the next blank.
    (copy,) = parse_dockerfile('# escape=`\nFROM a\nCOPY --chown=`"a b`" x\n').stages[0].instructions
    assert copy.chown == '"a' and copy.sources == ('b`"',) and copy.dest == "x"
