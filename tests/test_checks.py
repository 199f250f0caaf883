"""Build checks (builder.dockerfile.checks), ported from BuildKit's frontend/dockerfile/dockerfile_check_test.go.

Each rule has a Dockerfile that fires it (rule, exact message, line) and a near miss. BuildKit's lint
request evaluates every stage, so do we. CopyIgnoredFile and InvalidBaseImagePlatform need a build
context / a pulled image and are not run here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builder.dockerfile.checks import RULES, CheckConfig, CheckReport, parse_check_options, run_checks
from builder.dockerfile.evaluate import BaseImageConfig, Platform
from builder.dockerfile.instructions import parse_dockerfile
from builder.errors import DockerfileError, ExpansionError, Span

ROOT = Path(__file__).resolve().parent.parent
AMD64 = Platform("linux", "amd64")


def check(src: str, build_args=None, **kw) -> CheckReport:
    return run_checks(parse_dockerfile(src), build_args or {}, build_platform=AMD64, **kw)


def found(src: str, build_args=None, **kw) -> list[tuple[str, str, int]]:
    return [(w.rule, w.message, w.line) for w in check(src, build_args, **kw).warnings]


def found_sorted(src: str, build_args=None, **kw):
    """BuildKit's tests compare warnings sorted by (line, message)."""
    return sorted(found(src, build_args, **kw), key=lambda w: (w[2], w[1]))


def rules(src: str, build_args=None, **kw) -> set[str]:
    return {w[0] for w in found(src, build_args, **kw)}


def w(rule: str, message: str, line: int):
    return (rule, message, line)


# -- rule metadata ----------------------------------------------------------------------------

def test_rule_metadata_matches_ruleset():
    assert len(RULES) == 22
    assert RULES["JSONArgsRecommended"].url == "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
    assert RULES["UndefinedArgInFrom"].url == "https://docs.docker.com/go/dockerfile/rule/undefined-arg-in-from/"
    assert RULES["InvalidBaseImagePlatform"].url == ""
    assert RULES["InvalidDefinitionDescription"].experimental
    assert [r.name for r in RULES.values() if r.experimental] == ["InvalidDefinitionDescription"]


def test_clean_dockerfile():
    src = ('FROM alpine:3.19 AS build\nARG VERSION=1\nENV APP_VERSION=$VERSION\nWORKDIR /src\n'
           'COPY --chown=app:app . .\nRUN --mount=type=cache,target=/root/.cache make\nEXPOSE 8080/tcp\n'
           'FROM build\nCMD ["./app"]\n')
    report = check(src)
    assert report.warnings == () and report.exit_code == 0
    assert report.render() == "Check complete, no warnings found."


# -- StageNameCasing / FromAsCasing -----------------------------------------------------------

def test_stage_name_casing_and_from_as_casing():
    src = ("\n# warning: stage name should be lowercase\n#\nFROM scratch AS BadStageName\n\n"
           "# warning: 'as' should match 'FROM' cmd casing.\n#\nFROM scratch as base2\n\nFROM scratch AS base3\n")
    assert found(src) == [
        w("StageNameCasing", "Stage name 'BadStageName' should be lowercase", 4),
        w("FromAsCasing", "'as' and 'FROM' keywords' casing do not match", 8),
    ]


def test_from_as_casing_lowercase_from():
    src = "\n# warning: 'AS' should match 'from' cmd casing.\n#\nfrom scratch AS base\n\nfrom scratch as base2\n"
    assert found(src) == [w("FromAsCasing", "'AS' and 'from' keywords' casing do not match", 4)]


def test_from_as_casing_near_misses():
    # Mixed-case FROM is ConsistentInstructionCasing's business, not FromAsCasing's.
    assert "FromAsCasing" not in rules("From scratch as base\nFROM scratch AS base2\n")
    assert found("FROM scratch AS base\nFROM scratch\n") == []


# -- NoEmptyContinuation ----------------------------------------------------------------------

def test_no_empty_continuation():
    src = "\nFROM scratch\n# warning: empty continuation line\nCOPY Dockerfile \\\n\n.\nCOPY Dockerfile \\\n.\n"
    assert found(src) == [w("NoEmptyContinuation", "Empty continuation line", 6)]


def test_no_empty_continuation_near_miss_comment_inside_continuation():
    assert found("FROM scratch\nRUN echo a \\\n# comment\n  b\n") == []


# -- ConsistentInstructionCasing --------------------------------------------------------------

@pytest.mark.parametrize("src,expected", [
    ("\n#\n#\nFrom scratch as base\nFROM scratch AS base2\n",
     [w("ConsistentInstructionCasing", "Command 'From' should match the case of the command majority (uppercase)", 4)]),
    ("\nFROM scratch\n# warning\ncopy Dockerfile /foo\nCOPY Dockerfile /bar\n",
     [w("ConsistentInstructionCasing", "Command 'copy' should match the case of the command majority (uppercase)", 4)]),
    ("\n#\n#\nfrOM scratch as base\nfrom scratch as base2\n",
     [w("ConsistentInstructionCasing", "Command 'frOM' should match the case of the command majority (lowercase)", 4)]),
    ("\nfrom scratch\n# warning\nCOPY Dockerfile /foo\ncopy Dockerfile /bar\n",
     [w("ConsistentInstructionCasing", "Command 'COPY' should match the case of the command majority (lowercase)", 4)]),
    ("\n#\n#\nfrom scratch\nCOPY Dockerfile /foo\nCOPY Dockerfile /bar\nCOPY Dockerfile /baz\n",
     [w("ConsistentInstructionCasing", "Command 'from' should match the case of the command majority (uppercase)", 4)]),
    ("\n#\n#\nFROM scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\ncopy Dockerfile /baz\n",
     [w("ConsistentInstructionCasing", "Command 'FROM' should match the case of the command majority (lowercase)", 4)]),
    ("\nfrom scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\n", []),
    ("\nFROM scratch\nCOPY Dockerfile /foo\nCOPY Dockerfile /bar\n", []),
    ("\nFROM alpine\nRUN <<'EOT'\nenv\nEOT\n", []),
])
def test_consistent_instruction_casing(src, expected):
    assert found(src) == expected


def test_consistent_instruction_casing_ignores_meta_args_and_comments():
    # Global ARGs are not counted; a per-instruction comment does not skip this file-wide rule.
    src = "arg A=1\narg B=2\narg C=3\nFROM scratch\n# check=skip=ConsistentInstructionCasing\nCOPY a /a\n"
    assert found(src) == []
    src = "FROM scratch\nCOPY a /a\n# check=skip=ConsistentInstructionCasing\ncopy b /b\nRUN x\n"
    assert rules(src) == {"ConsistentInstructionCasing"}


# -- DuplicateStageName / ReservedStageName ---------------------------------------------------

def test_duplicate_stage_name():
    assert found("\nFROM scratch AS b\nFROM scratch AS b\n") == [
        w("DuplicateStageName", 'Duplicate stage name "b", stage names should be unique', 3)]
    assert found("\nFROM scratch AS b1\nFROM scratch AS b2\n") == []


def test_duplicate_stage_name_is_case_insensitive():
    assert rules("FROM scratch AS b\nFROM scratch AS B\n") == {"DuplicateStageName", "StageNameCasing"}


def test_reserved_stage_name():
    assert found("\nFROM scratch AS scratch\nFROM scratch AS context\n") == [
        w("ReservedStageName", 'Stage name should not use the same name as reserved stage "scratch"', 2),
        w("ReservedStageName", 'Stage name should not use the same name as reserved stage "context"', 3),
    ]
    assert found("\nFROM scratch\nFROM scratch AS a\n") == []


# -- JSONArgsRecommended ----------------------------------------------------------------------

@pytest.mark.parametrize("keyword", ["CMD", "ENTRYPOINT"])
def test_json_args_recommended(keyword):
    assert found(f"\nFROM scratch\n{keyword} mycommand\n") == [
        w("JSONArgsRecommended",
          f"JSON arguments recommended for {keyword} to prevent unintended behavior related to OS signals", 3)]


@pytest.mark.parametrize("src", [
    'FROM scratch\nSHELL ["/usr/bin/customshell"]\nCMD mycommand\n',
    'FROM scratch\nSHELL ["/usr/bin/customshell"]\nENTRYPOINT mycommand\n',
    'FROM scratch AS base\nSHELL ["/usr/bin/customshell"]\n\nFROM base\nCMD mycommand\n',
    'FROM scratch AS base\nSHELL ["/usr/bin/customshell"]\n\nFROM base\nENTRYPOINT mycommand\n',
    'FROM scratch\nCMD ["mycommand"]\nENTRYPOINT ["x"]\n',
    'FROM scratch\nRUN mycommand\n',
    'FROM scratch\n# check=skip=JSONArgsRecommended\nCMD mycommand\n',
])
def test_json_args_recommended_near_misses(src):
    assert "JSONArgsRecommended" not in rules(src)


def test_json_args_recommended_base_image_shell():
    src = "FROM img\nCMD mycommand\n"
    assert rules(src) == {"JSONArgsRecommended"}
    assert found(src, base_env=BaseImageConfig(shell=("/bin/bash", "-c"))) == []


def test_json_args_keyword_as_written():
    assert found("from scratch\ncmd x\n") == [
        w("JSONArgsRecommended", "JSON arguments recommended for cmd to prevent unintended behavior related to OS "
          "signals", 2)]


# -- MaintainerDeprecated ---------------------------------------------------------------------

def test_maintainer_deprecated():
    assert found("\nFROM scratch\nMAINTAINER me@example.org\n") == [
        w("MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label", 3)]
    assert found('\nFROM scratch\nLABEL org.opencontainers.image.authors="me@example.org"\n') == []
    assert found("\nFROM scratch\n# check=skip=MaintainerDeprecated\nMAINTAINER me@example.org\n") == []


# -- UndefinedArgInFrom -----------------------------------------------------------------------

@pytest.mark.parametrize("src", [
    "ARG base=scratch\nFROM $base\nCOPY Dockerfile .\n",
    "ARG BUILDPLATFORM=linux/amd64\nFROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n",
    "FROM --platform=$BUILDPLATFORM scratch\nCOPY Dockerfile .\n",
    "ARG DEBUG\nFROM scratch${DEBUG}\nCOPY Dockerfile .\n",
    "ARG DEBUG\nFROM scra${DEBUG:-tch}\nCOPY Dockerfile .\n",
    'ARG DEBUG=""\nFROM scratch${DEBUG-@bogus}\nCOPY Dockerfile .\n',
])
def test_undefined_arg_in_from_near_misses(src):
    assert found(src) == []


def test_undefined_arg_in_from():
    src = "\nARG tag=latest\nFROM busybox:${tag}${version} AS b\nCOPY Dockerfile .\n"
    assert found(src) == [w("UndefinedArgInFrom", "FROM argument 'version' is not declared", 3)]


def test_undefined_arg_in_from_then_platform_error():
    src = "\nFROM --platform=$BULIDPLATFORM scratch\nCOPY Dockerfile .\n"
    with pytest.raises(DockerfileError) as info:
        check(src)
    assert info.value.message == "empty platform value from expression $BULIDPLATFORM (did you mean BUILDPLATFORM?)"
    assert info.value.span.line == 2
    assert [(x.rule, x.message, x.line) for x in info.value.report.warnings] == [
        w("UndefinedArgInFrom", "FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?)", 2)]


def test_undefined_arg_in_from_with_suggestion_and_bad_platform():
    src = "\nARG MY_OS=linux\nARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} busybox\nCOPY Dockerfile .\n"
    report = check(src, collect_errors=True)
    assert [(x.rule, x.message, x.line) for x in report.warnings] == [
        w("UndefinedArgInFrom", "FROM argument 'MYARCH' is not declared (did you mean MY_ARCH?)", 4)]
    assert report.error.message == (
        'failed to parse platform linux/${MYARCH}: "" is an invalid component of "linux/": platform specifier '
        'component must match "^[A-Za-z0-9_.-]+$": invalid argument (did you mean MY_ARCH?)')
    assert report.exit_code == 1


def test_undefined_arg_in_from_skipped_by_comment_above_from():
    assert found("# hello\n# check=skip=UndefinedArgInFrom\nFROM busybox${x}\n") == []


# -- WorkdirRelativePath ----------------------------------------------------------------------

def test_workdir_relative_path():
    assert found("\nFROM scratch\nWORKDIR app/\n") == [
        w("WorkdirRelativePath", 'Relative workdir "app/" can have unexpected results if the base image changes', 3)]
    assert found("\nFROM scratch AS a\nWORKDIR /app\n\nFROM a AS b\nWORKDIR subdir/\n") == []
    assert found("\nFROM scratch\n# check=skip=WorkdirRelativePath\nWORKDIR app/\n") == []


def test_workdir_relative_path_only_first_and_after_expansion():
    assert found("FROM scratch\nWORKDIR /a\nWORKDIR b\n") == []
    assert found("FROM scratch\nWORKDIR a\nWORKDIR b\n") == [
        w("WorkdirRelativePath", 'Relative workdir "a" can have unexpected results if the base image changes', 2)]
    assert found("FROM scratch\nENV D=/abs\nWORKDIR $D/x\n") == []
    # Not inherited from an unrelated earlier stage.
    assert rules("FROM scratch AS a\nWORKDIR /a\nFROM scratch\nWORKDIR b\n") == {"WorkdirRelativePath"}


# -- UndefinedVar -----------------------------------------------------------------------------

@pytest.mark.parametrize("src", [
    "\nFROM scratch\nARG foo\nCOPY Dockerfile${foo} .\n",
    "\nFROM alpine AS base\nARG foo=Dockerfile\n\nFROM base\nCOPY $foo .\n",
    "\nFROM alpine\nRUN echo $PATH\n",
    "\nFROM alpine\nRUN echo $undefined ${also:?undefined}\n",
    '\nFROM alpine\nCMD echo $undefined\nENTRYPOINT ["$x"]\nHEALTHCHECK CMD $y\nSHELL ["$z"]\n',
    "\nFROM alpine\nCOPY <<'EOT' /x\n$undefined\nEOT\n",
    "\nFROM alpine\nEXPOSE $undefined 80\n",
    "\nFROM alpine\nONBUILD COPY $undefined /x\n",
    "\nFROM alpine\nCOPY --from=base --exclude=$undefined a /b\n",
])
def test_undefined_var_near_misses(src):
    assert "UndefinedVar" not in rules(src)


def test_undefined_var_before_arg_declaration():
    src = "\nFROM alpine\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\n"
    assert found(src) == [w("UndefinedVar", "Usage of undefined variable '$foo'", 3)]


def test_undefined_var_suggestions():
    src = "\nFROM alpine\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nARG DIR_CONFIG=config/\nCOPY $DIR_ASSET .\n"
    assert found(src) == [w("UndefinedVar", "Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)", 6)]
    assert found("\nFROM alpine\nENV PATH=$PAHT:/tmp/bin\n") == [
        w("UndefinedVar", "Usage of undefined variable '$PAHT' (did you mean $PATH?)", 3)]


def test_undefined_var_all_stages():
    src = "\nFROM scratch AS first\nCOPY $foo .\n\nFROM scratch AS second\nCOPY $bar .\n"
    assert found(src) == [w("UndefinedVar", "Usage of undefined variable '$foo'", 3),
                          w("UndefinedVar", "Usage of undefined variable '$bar'", 6)]


def test_undefined_var_in_every_expanded_field():
    src = ("FROM scratch\nENV a=$E1\nLABEL l=$L1\nWORKDIR /$W1\nUSER $U1\nVOLUME /$V1\nSTOPSIGNAL $S1\n"
           "COPY --chown=$C1 --chmod=$C2 a$C3 /$C4\nADD --checksum=$A1 a /b\n"
           "RUN --mount=type=cache,target=/$R1 true\nARG X=$G1\nCOPY <<EOT /f\n$H1\nEOT\n")
    names = [m.split("'")[1] for r, m, _ in found(src) if r == "UndefinedVar"]
    assert names == ["$E1", "$L1", "$W1", "$U1", "$V1", "$S1", "$C1", "$C2", "$C3", "$C4", "$A1", "$R1", "$G1",
                     "$H1"]


def test_undefined_var_once_per_word_and_name():
    assert found("FROM scratch\nCOPY $a$a $a /d\n") == [
        w("UndefinedVar", "Usage of undefined variable '$a'", 2), w("UndefinedVar", "Usage of undefined variable '$a'", 2)]


def test_undefined_var_default_forms_still_count_and_env_before_instruction():
    assert rules("FROM scratch\nCOPY ${a:-x} /d\n") == {"UndefinedVar"}
    assert found("FROM scratch\nENV A=1 B=$A\n") == [w("UndefinedVar", "Usage of undefined variable '$A'", 2)]
    assert found("FROM scratch\nENV A=1\nENV B=$A\n") == []


def test_undefined_var_arg_default_sees_earlier_definitions():
    assert found("FROM scratch\nARG a=1 b=$a\n") == []
    assert found("FROM scratch\nARG b=$a a=1\n") == [w("UndefinedVar", "Usage of undefined variable '$a'", 2)]


def test_undefined_var_global_arg_needs_redeclaration():
    assert found("ARG V=1\nFROM scratch\nCOPY $V /x\n") == [w("UndefinedVar", "Usage of undefined variable '$V'", 3)]
    assert found("ARG V=1\nFROM scratch\nARG V\nCOPY $V /x\n") == []


def test_undefined_var_base_env_defines_variables():
    src = "FROM python:3\nWORKDIR /$PYTHON_VERSION\n"
    assert rules(src) == {"UndefinedVar"}
    assert found(src, base_env={"PYTHON_VERSION": "3.12"}) == []
    assert found(src, base_env={"python:3": {"PYTHON_VERSION": "3.12"}}) == []
    assert found(src, base_env=lambda name: {"PYTHON_VERSION": "3.12"} if name == "python:3" else None) == []


def test_undefined_var_in_onbuild_trigger_reported_at_child_from():
    src = "FROM scratch AS base\nONBUILD COPY $missing /x\nFROM base\nRUN true\n"
    assert found(src) == [w("UndefinedVar", "Usage of undefined variable '$missing'", 3)]


# -- MultipleInstructionsDisallowed -----------------------------------------------------------

def _multiple(name: str, line: int):
    return w("MultipleInstructionsDisallowed", f"Multiple {name} instructions should not be used in the same stage "
             "because only the last one will be used", line)


def test_multiple_instructions_disallowed():
    src = ('\nFROM scratch\nENTRYPOINT ["/myapp"]\nENTRYPOINT ["/myotherapp"]\nCMD ["/myapp"]\nCMD ["/myotherapp"]\n'
           'HEALTHCHECK CMD ["/myapp"]\nHEALTHCHECK CMD ["/myotherapp"]\n')
    assert found(src) == [_multiple("ENTRYPOINT", 3), _multiple("CMD", 5), _multiple("HEALTHCHECK", 7)]


def test_multiple_instructions_disallowed_interleaved():
    src = ('\nFROM scratch\nENTRYPOINT ["/myapp"]\nCMD ["/myapp"]\nHEALTHCHECK CMD ["/myapp"]\n'
           'COPY <<EOF /a.txt\nHello, World!\nEOF\nENTRYPOINT ["/myotherapp"]\nCMD ["/myotherapp"]\n'
           'HEALTHCHECK CMD ["/myotherapp"]\n')
    assert found(src) == [_multiple("ENTRYPOINT", 3), _multiple("CMD", 4), _multiple("HEALTHCHECK", 5)]


def test_multiple_instructions_disallowed_near_miss_other_stage():
    src = ('\nFROM scratch AS a\nENTRYPOINT ["/myapp"]\nCMD ["/myapp"]\nHEALTHCHECK CMD ["/myapp"]\n\n'
           'FROM a AS b\nENTRYPOINT ["/myotherapp"]\nCMD ["/myotherapp"]\nHEALTHCHECK CMD ["/myotherapp"]\n')
    assert found(src) == []


# -- LegacyKeyValueFormat ---------------------------------------------------------------------

def test_legacy_key_value_format():
    assert found("\nFROM scratch\nENV testkey value\nLABEL key value\n") == [
        w("LegacyKeyValueFormat", '"ENV key=value" should be used instead of legacy "ENV key value" format', 3),
        w("LegacyKeyValueFormat", '"LABEL key=value" should be used instead of legacy "LABEL key value" format', 4)]
    assert found("\nFROM scratch\nENV testkey=value\nLABEL key=value\n") == []
    assert found("\nFROM scratch\n# check=skip=LegacyKeyValueFormat\nENV testkey value\n"
                 "# check=skip=LegacyKeyValueFormat\nLABEL key value\n") == []


def test_legacy_key_value_format_in_unreachable_stage():
    src = "\nFROM scratch AS a\n\nFROM a AS b\nENV testkey value\nLABEL key value\n\nFROM a AS c\n"
    assert [x[2] for x in found(src)] == [5, 6]


# -- RedundantTargetPlatform / FromPlatformFlagConstDisallowed --------------------------------

def test_redundant_target_platform():
    assert found("\nFROM --platform=$TARGETPLATFORM scratch\n") == [
        w("RedundantTargetPlatform", "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is "
          "the default behavior", 2)]
    assert found("\nFROM --platform=${TARGETPLATFORM} scratch\n") == [
        w("RedundantTargetPlatform", "Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this "
          "is the default behavior", 2)]
    assert found("\n# check=skip=RedundantTargetPlatform\nFROM --platform=$TARGETPLATFORM scratch\n") == []


@pytest.mark.parametrize("src", [
    "FROM --platform=$BUILDPLATFORM scratch\n",
    "FROM --platform=${TARGETPLATFORM}${EMPTY} scratch\n",
    "FROM --platform=${TARGETPLATFORM:-x}${TARGETARCH:+} scratch\n",
])
def test_redundant_target_platform_near_misses(src):
    assert "RedundantTargetPlatform" not in rules(src)


def test_from_platform_flag_const_disallowed():
    assert found("\nFROM --platform=linux/amd64 scratch\n") == [
        w("FromPlatformFlagConstDisallowed", 'FROM --platform flag should not use constant value "linux/amd64"', 2)]
    assert found("\nFROM --platform=linux/amd64 scratch AS my_amd64_stage\n") == []
    assert found("\nFROM --platform=linux/amd64 scratch AS linux\n") == []
    assert found("ARG P=linux/amd64\nFROM --platform=$P scratch\n") == []


# -- SecretsUsedInArgOrEnv --------------------------------------------------------------------

def test_secrets_used_in_arg_or_env():
    src = """# check=skip=InvalidDefinitionDescription

FROM scratch
ARG SECRET_PASSPHRASE
ENV SUPER_Secret=foo
ENV password=bar secret=baz
ARG super_duper_secret_token=foo auth=bar
ENV apikey=bar sunflower=foo
ENV git_key=
ENV PUBLIC_KEY=
ARG public_token
ARG SECRET_PASSPHRASE_FILE
ENV password_file=bar secret_File=baz
ARG AUTH_MODULE_VERSION
# check=skip=SecretsUsedInArgOrEnv // allow secret in environment
ENV password=bar
# check=skip=SecretsUsedInArgOrEnv // allow secret in arg
ARG password
# check=skip=all // is local to only this instruction
ENV alternate_password=bar
# check=skip=all // is local to only this instruction
ARG alternate_password
"""

    def secret(kind, key, line):
        return w("SecretsUsedInArgOrEnv", f'Do not use ARG or ENV instructions for sensitive data ({kind} "{key}")', line)

    assert found_sorted(src) == [
        secret("ARG", "SECRET_PASSPHRASE", 4), secret("ENV", "SUPER_Secret", 5), secret("ENV", "password", 6),
        secret("ENV", "secret", 6), secret("ARG", "auth", 7), secret("ARG", "super_duper_secret_token", 7),
        secret("ENV", "apikey", 8), secret("ENV", "git_key", 9)]


def test_secrets_not_checked_for_global_args_and_checked_after_expansion():
    assert found("ARG TOKEN=x\nFROM scratch\n") == []
    assert found("FROM scratch\nENV K=token\nENV $K=1\n") == [
        w("SecretsUsedInArgOrEnv", 'Do not use ARG or ENV instructions for sensitive data (ENV "token")', 3)]


# -- InvalidDefaultArgInFrom ------------------------------------------------------------------

@pytest.mark.parametrize("src,build_args,base", [
    ("\nARG VERSION\nFROM busybox:$VERSION\n", {"VERSION": "latest"}, "busybox:$VERSION"),
    ("\nARG IMAGE\nFROM $IMAGE\n", {"IMAGE": "busybox:latest"}, "$IMAGE"),
    ('\nARG SFX="box:"\nFROM busy${SFX}\n', {"SFX": "box:latest"}, "busy${SFX}"),
])
def test_invalid_default_arg_in_from(src, build_args, base):
    assert found(src, build_args) == [
        w("InvalidDefaultArgInFrom", f"Default value for ARG {base} results in empty or invalid base image name", 3)]


@pytest.mark.parametrize("src,build_args", [
    ('\nARG VERSION="latest"\nFROM busybox:${VERSION}\n', {"VERSION": "latest"}),
    ('\nARG BUSYBOX_VARIANT=""\nFROM busybox:stable${BUSYBOX_VARIANT}\n', {"BUSYBOX_VARIANT": "-musl"}),
    ('\n\tARG BUSYBOX_VARIANT\n\tFROM busybox:stable${BUSYBOX_VARIANT}\n\t', {"BUSYBOX_VARIANT": "-musl"}),
])
def test_invalid_default_arg_in_from_near_misses(src, build_args):
    assert found(src, build_args) == []


# -- InvalidDefinitionDescription (experimental) ----------------------------------------------

def test_definition_description_valid():
    src = """# check=skip=all;experimental=InvalidDefinitionDescription
# foo this is the foo
ARG foo=bar

# base this is the base image
FROM scratch AS base

# version this is the version number
ARG version=latest

# baz this is the baz
ARG foo=baz bar=qux baz=quux
#
ARG bit=bat

# comment for something other than ARG or FROM
COPY Dockerfile .
"""
    assert found(src) == []


def test_definition_description_invalid():
    src = """# check=experimental=InvalidDefinitionDescription
# bar this is the bar
ARG foo=bar
# BasE this is the BasE image
FROM scratch AS base
# definitely a bad comment
ARG version=latest
# definitely a bad comment
ARG foo=baz bar=qux baz=quux
"""

    def d(kind, name, line):
        return w("InvalidDefinitionDescription", f"Comment for {kind} should follow the format: `# {name} <description>`",
                 line)

    assert found(src) == [d("ARG", "foo", 3), d("FROM", "base", 5), d("ARG", "version", 7), d("ARG", "<arg_key>", 9)]


def test_definition_description_is_opt_in():
    src = "# bad comment\nARG foo=bar\nFROM scratch\n"
    assert found(src) == []
    assert rules(src, {"BUILDKIT_DOCKERFILE_CHECK": "experimental=all"}) == {"InvalidDefinitionDescription"}
    assert rules("# check=experimental=all\n\n# bad\nFROM scratch AS a\n") == {"InvalidDefinitionDescription"}
    # Enabled by a comment above the instruction too.
    src = "# bad comment\n# check=experimental=InvalidDefinitionDescription\nARG foo=bar\nFROM scratch\n"
    assert rules(src) == {"InvalidDefinitionDescription"}


# -- ExposeProtoCasing / ExposeInvalidFormat --------------------------------------------------

def test_expose_proto_casing():
    assert found("\nFROM scratch\nEXPOSE 80/TcP 8080/TCP 8080/udp\n") == [
        w("ExposeProtoCasing", "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase", 3),
        w("ExposeProtoCasing", "Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase", 3)]
    assert found("FROM scratch\nEXPOSE 80/tcp 53/udp 9/sctp 8080\n") == []


def test_expose_invalid_format():
    src = "\nFROM scratch\nEXPOSE 127.0.0.1:80:80 [::1]:8080:8080 5000:5000 8000\n"

    def inv(port):
        return w("ExposeInvalidFormat", "EXPOSE instruction should not define an IP address or host-port mapping, "
                 f"found '{port}'", 3)

    assert found_sorted(src) == [inv("127.0.0.1:80:80"), inv("5000:5000"), inv("[::1]:8080:8080")]


def test_expose_rules_apply_after_expansion():
    src = "FROM scratch\nARG P=80/TCP\nEXPOSE $P\n"
    assert found(src) == [w("ExposeProtoCasing", "Defined protocol '80/TCP' in EXPOSE instruction should be lowercase", 3)]


# -- configuration ----------------------------------------------------------------------------

CASING = "#check={}\nFROM scratch as base\ncopy Dockerfile .\n"


@pytest.mark.parametrize("option", ["skip=all", "skip=all;error=true",
                                    "skip=ConsistentInstructionCasing,FromAsCasing",
                                    "skip=ConsistentInstructionCasing,FromAsCasing;error=true",
                                    "skip=ConsistentInstructionCasing,FromAsCasing // anything after a space"])
def test_check_directive_skips(option):
    report = check(CASING.format(option))
    assert report.warnings == () and report.exit_code == 0 and report.lint_error is None


def test_check_directive_skip_one_rule():
    assert found(CASING.format("skip=ConsistentInstructionCasing")) == [
        w("FromAsCasing", "'as' and 'FROM' keywords' casing do not match", 2)]


def test_check_directive_error_true():
    report = check(CASING.format("skip=ConsistentInstructionCasing;error=true"))
    assert report.lint_error == "lint violation found for rules: FromAsCasing"
    assert report.exit_code == 1
    assert report.render().endswith("\nERROR: lint violation found for rules: FromAsCasing")
    assert report.to_json()["error"]["message"] == "lint violation found for rules: FromAsCasing"


def test_build_arg_replaces_directive():
    src = CASING.format("skip=all")
    report = check(src, {"BUILDKIT_DOCKERFILE_CHECK": "skip=ConsistentInstructionCasing;error=true"})
    assert [x.rule for x in report.warnings] == ["FromAsCasing"] and report.lint_error
    report = check(CASING.format("error=true"), {"BUILDKIT_DOCKERFILE_CHECK": "skip=all"})
    assert report.warnings == () and report.exit_code == 0
    # An empty value still replaces the directive; None means "not given".
    assert len(check(src, {"BUILDKIT_DOCKERFILE_CHECK": ""}).warnings) == 2
    assert check(src, {"BUILDKIT_DOCKERFILE_CHECK": None}).warnings == ()


def test_check_directive_after_shebang_and_not_after_instructions():
    # BuildKit skips a "#!" first line when looking for the check directive (not for other directives).
    assert found("#!/usr/bin/env dockerfile\n# check=skip=all\nFROM scratch as base\nMAINTAINER x\n") == []
    assert rules("#!/usr/bin/env dockerfile\n# hello\n# check=skip=all\nFROM scratch\nMAINTAINER x\n") == {
        "MaintainerDeprecated"}
    src = "# syntax=docker/dockerfile:1\n# check=skip=FromAsCasing\nFROM scratch as base\n"
    assert found(src) == []
    # Below an instruction it is only a comment for the next instruction.
    src = "FROM scratch\n# check=skip=all\nMAINTAINER x\nMAINTAINER y\n"
    assert found(src) == [w("MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label", 4)]


def test_comment_config_applies_to_one_instruction_and_first_check_comment_wins():
    src = ("FROM scratch\n# check=skip=UndefinedVar\nCOPY $a /a\nCOPY $b /b\n"
           "# check=skip=JSONArgsRecommended\n# check=skip=UndefinedVar\nCOPY $c /c\n")
    assert [x[1] for x in found(src)] == ["Usage of undefined variable '$b'", "Usage of undefined variable '$c'"]


def test_invalid_comment_config_is_ignored():
    src = "FROM scratch\n# check=skip=UndefinedVar;bogus=1\nCOPY $a /a\n"
    assert rules(src) == {"UndefinedVar"}


def test_directive_value_is_cut_at_first_space():
    with pytest.raises(DockerfileError) as info:
        check("# check= skip = FromAsCasing\nFROM scratch as a\n")
    assert info.value.message == 'failed to parse check options: invalid check option "skip"'


def test_comment_above_from_applies_to_from_rules_only():
    src = "FROM scratch AS a\n# check=skip=all\nFROM scratch AS Base\nCOPY $a /a\n"
    assert rules(src) == {"UndefinedVar"}


def test_skip_does_not_apply_to_experimental_rules():
    src = "# check=skip=all;experimental=all\n# bad\nARG foo\nFROM scratch AS Base\n"
    assert rules(src) == {"InvalidDefinitionDescription"}


@pytest.mark.parametrize("text,expected", [
    ("", CheckConfig()),
    ("skip=A,B", CheckConfig(skip_rules=frozenset({"A", "B"}))),
    ("skip=all;error=TRUE;experimental=all", CheckConfig(True, frozenset(), True, frozenset(), True)),
    ("error=1", CheckConfig(error=True)),
    ("error=false;skip= A ", CheckConfig(skip_rules=frozenset({"A"}))),
    (" skip = A , B ", CheckConfig(skip_rules=frozenset({"A", "B"}))),
])
def test_parse_check_options(text, expected):
    assert parse_check_options(text) == expected


@pytest.mark.parametrize("value,message", [
    ("bogus", 'invalid check option "bogus"'),
    ("skip=all;foo=bar", 'invalid check option "foo"'),
    ("error=maybe", 'failed to parse check option "error=maybe": strconv.ParseBool: parsing "maybe": invalid syntax'),
])
def test_invalid_check_configuration(value, message):
    with pytest.raises(DockerfileError) as info:
        check(f"# check={value}\nFROM scratch\n")
    assert info.value.message == f"failed to parse check options: {message}"
    assert info.value.span == Span(1)
    with pytest.raises(DockerfileError) as info:
        check("FROM scratch\n", {"BUILDKIT_DOCKERFILE_CHECK": value})
    assert info.value.message == f"failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK: {message}"


def test_check_options_split_in_three_at_most():
    config = parse_check_options("skip=A;error=true;experimental=B;skip=C")
    assert config.experimental_rules == frozenset({"B;skip=C"}) and config.skip_rules == frozenset({"A"})


# -- evaluation errors ------------------------------------------------------------------------

def test_expansion_error_in_env_is_located_dockerfile_error():
    src = 'FROM scratch AS Bad\nENV x="${y:?must be set}"\n'
    with pytest.raises(ExpansionError) as info:
        check(src)
    err = info.value
    assert err.message == 'failed to process "\\"${y:?must be set}\\"": y: must be set'
    assert err.span.line == 2 and err.filename == "Dockerfile" and err.source_lines
    assert [x.rule for x in err.report.warnings] == ["StageNameCasing"]


def test_collect_errors_puts_error_in_report():
    report = check('FROM scratch AS Bad\nENV x="${y:?must be set}"\n', collect_errors=True)
    assert report.exit_code == 1 and report.error.span.line == 2
    text = report.render()
    assert "WARNING: StageNameCasing" in text and "\nERROR: failed to process" in text
    assert " 2 | >>> ENV x=" in text
    assert report.to_json()["error"] == {"message": report.error.message, "file": "Dockerfile", "line": 2,
                                         "end_line": 2}


@pytest.mark.parametrize("src,message,line", [
    ("ARG E\nFROM $E\n", "base name ($E) should not be blank", 2),
    ("ARG A=${B:?nope}\nFROM scratch\n", 'failed to process "${B:?nope}": B: nope', 1),
    ("FROM scratch\nARG A=${B:?nope}\n", 'failed to process "${B:?nope}": B: nope', 2),
    ("FROM scratch\nEXPOSE 80/foo\n", 'invalid port: "80/foo": invalid proto: foo', 2),
    ("FROM scratch\nEXPOSE 99999\n", "invalid containerPort: 99999", 2),
    ("FROM scratch\nVOLUME $EMPTY\n", "VOLUME specified can not be an empty string", 2),
    ("FROM scratch\nRUN --mount=type=$T,target=/x true\n", 'unsupported mount type ""', 2),
    ("FROM scratch AS base\nONBUILD RUN --mount=type=secret,from=x true\nFROM base\n",
     "secret mount should not have a from", 3),
])
def test_evaluation_errors(src, message, line):
    with pytest.raises(DockerfileError) as info:
        check(src)
    assert info.value.message.startswith(message) and info.value.span.line == line


def test_no_stages():
    with pytest.raises(DockerfileError) as info:
        check("# bad\nARG A=1\n", {"BUILDKIT_DOCKERFILE_CHECK": "experimental=all"})
    assert info.value.message == "dockerfile contains no stages to build"
    assert [x.rule for x in info.value.report.warnings] == ["InvalidDefinitionDescription"]


def test_arg_default_error_ignored_when_build_arg_given():
    assert found("FROM scratch\nARG A=${B:?nope}\n", {"A": "given"}) == []


# -- report rendering and JSON ----------------------------------------------------------------

def test_render_matches_docker_build_check_layout():
    src = "FROM alpine AS Base\nRUN echo hi\n\nFROM base\nCMD echo hi\n"
    text = check(src).render()
    assert text == """Check complete, 2 warnings have been found!

WARNING: StageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/
Stage name 'Base' should be lowercase
Dockerfile:1
--------------------
   1 | >>> FROM alpine AS Base
   2 |     RUN echo hi
   3 |     
--------------------

WARNING: JSONArgsRecommended - https://docs.docker.com/go/dockerfile/rule/json-args-recommended/
JSON arguments recommended for CMD to prevent unintended behavior related to OS signals
Dockerfile:5
--------------------
   3 |     
   4 |     FROM base
   5 | >>> CMD echo hi
   6 |     
--------------------"""


def test_render_multiline_instruction_and_single_warning_header():
    src = "FROM scratch\nRUN a\nRUN b\nRUN c\nMAINTAINER \\\n  me\nRUN d\nRUN e\nRUN f\nRUN g\n"
    text = check(src).render()
    assert text.startswith("Check complete, 1 warning has been found!\n\nWARNING: MaintainerDeprecated")
    assert "Dockerfile:5\n--------------------\n   4 |     RUN c\n   5 | >>> MAINTAINER \\\n" \
           "   6 | >>>   me\n   7 |     RUN d\n--------------------" in text


def test_warnings_sorted_by_line_and_json():
    src = "FROM scratch\nCOPY $a /a\nMAINTAINER x\n"
    report = check(src)
    assert [x.line for x in report.warnings] == [2, 3]
    data = report.to_json()
    assert data["file"] == "Dockerfile" and data["error"] is None
    assert data["warnings"][0] == {
        "rule": "UndefinedVar", "description": "Variables should be defined before their use",
        "url": "https://docs.docker.com/go/dockerfile/rule/undefined-var/",
        "message": "Usage of undefined variable '$a'", "file": "Dockerfile", "line": 2, "end_line": 2}
    json.dumps(data)


def test_warning_spans_cover_continuation_and_heredoc_lines():
    report = check("FROM scratch\nCOPY <<EOF \\\n  $a /d\nbody\nEOF\n")
    assert [(x.rule, x.line, x.end_line) for x in report.warnings] == [("UndefinedVar", 2, 5)]


# -- through the CLI --------------------------------------------------------------------------

def _cli(tmp_path: Path, src: str, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "Dockerfile"
    path.write_text(src)
    return subprocess.run([sys.executable, "-m", "builder.cli", "check", "-f", str(path), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_cli_clean(tmp_path):
    result = _cli(tmp_path, "FROM alpine\nCMD [\"sh\"]\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Check complete, no warnings found."


def test_cli_warnings_exit_1(tmp_path):
    result = _cli(tmp_path, "FROM alpine AS Base\nCMD sh\n")
    assert result.returncode == 1
    assert "Check complete, 2 warnings have been found!" in result.stdout
    assert "WARNING: StageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/\n" \
           "Stage name 'Base' should be lowercase\n" in result.stdout
    assert f"{tmp_path / 'Dockerfile'}:1\n" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_json(tmp_path):
    result = _cli(tmp_path, "FROM alpine\nMAINTAINER me\n", "--format", "json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert [(x["rule"], x["line"], x["end_line"]) for x in data["warnings"]] == [("MaintainerDeprecated", 2, 2)]


def test_cli_build_args(tmp_path):
    src = "# check=error=true\nFROM alpine AS Base\nARG V\nFROM busybox:$V\n"
    result = _cli(tmp_path, src, "--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all")
    assert result.returncode == 0, result.stdout + result.stderr
    result = _cli(tmp_path, "ARG V\nFROM busybox:$V\n", "--build-arg", "V=1.36")
    assert result.returncode == 1 and "InvalidDefaultArgInFrom" in result.stdout
    result = _cli(tmp_path, src)
    assert result.returncode == 1 and "ERROR: lint violation found for rules: StageNameCasing" in result.stdout


def test_cli_errors_without_traceback(tmp_path):
    result = _cli(tmp_path, 'FROM alpine\nENV a="${b:?is required}"\n')
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert 'Dockerfile:2: failed to process "\\"${b:?is required}\\"": b: is required' in result.stderr
    result = _cli(tmp_path, "# check=skip=x;error=maybe\nFROM alpine\n")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "failed to parse check options: failed to parse check option" in result.stderr
    result = _cli(tmp_path, "FROM alpine\n", "--build-arg", "BUILDKIT_DOCKERFILE_CHECK=bogus")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert 'failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK: invalid check option "bogus"' in result.stderr
