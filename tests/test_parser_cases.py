"""BuildKit's parser unit tests, ported by intent to our API.

Sources (moby/buildkit ``frontend/dockerfile/parser/``): ``parser_test.go`` (words, empty-continuation
warnings, scanner errors), ``parser_heredoc_test.go`` (heredoc names, fd, expand/chomp flags, contents,
heredoc helpers), ``line_parsers_test.go`` (ENV/LABEL forms), ``directives_test.go`` (directive
scanning; ``DetectSyntax``'s extra formats belong to syntax detection, not to ``Parse``),
``json_test.go`` (exec-form JSON). Plus the line-handling rules of the checklist
(``design/dockerfile-spec.md`` sections 1-3) that those tests leave implicit.
"""

from __future__ import annotations

import pytest

from builder.dockerfile import words as w
from builder.dockerfile.dump import dump_tree
from builder.dockerfile.prepass import heredocs_from_line, parse_heredoc_word
from builder.dockerfile.syntax import EXEC, LEGACY_PAIR, NONE, PAIRS, SHELL, WORDS, parse_text
from builder.errors import DockerfileError


def dump(text: str) -> list[str]:
    return dump_tree(parse_text(text)).splitlines()


def error_of(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        parse_text(text)
    return info.value


# --------------------------------------------------------------------------------------------------
# parser_test.go
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    ("foo", ["foo"]),
    ("foo bar", ["foo", "bar"]),
    ("foo\\ bar", ["foo\\ bar"]),
    ("foo=bar", ["foo=bar"]),
    ("foo bar 'abc xyz'", ["foo", "bar", "'abc xyz'"]),
    ('foo bar "abc xyz"', ["foo", "bar", '"abc xyz"']),
    ("àöû", ["àöû"]),
    ('föo bàr "âbc xÿz"', ["föo", "bàr", '"âbc xÿz"']),
])
def test_parse_words(line, expected):
    assert [word for word, _ in w.parse_words(line, "\\")] == expected
    # ARG is the instruction that keeps parseWords' words as they are
    assert parse_text("ARG " + line).nodes[0].values() == expected


def test_parse_words_details():
    # quotes and escapes stay in the word; an escape at the very end is dropped
    assert [x for x, _ in w.parse_words("a\\\"b 'c\\' d e\\", "\\")] == ['a\\"b', "'c\\'", "d", "e"]
    # the file's escape character is the one that counts; unicode spaces split words
    assert [x for x, _ in w.parse_words("a`  b c\\ d\u3000e", "`")] == ["a` ", "b", "c\\", "d", "e"]
    # a quoted empty word is a word
    assert [x for x, _ in w.parse_words('"" \'\'', "\\")] == ['""', "''"]


def test_warns_on_empty_continuation_line():
    text = """
FROM alpine:3.6

RUN valid \\
    continuation

RUN something \\

    following \\

    more

RUN another \\

    thing

RUN non-indented \\
# this is a comment
   after-comment

RUN indented \\
    # this is an indented comment
    comment
\t"""
    tree = parse_text(text)
    assert len(tree.warnings) == 2
    (first, first_line), (second, second_line) = tree.warnings
    assert first.startswith("Empty continuation line found in")
    assert "RUN something     following     more" in first
    assert "RUN another     thing" in second
    # BuildKit locates the warning at the last line of the instruction
    assert (first_line, second_line) == (11, 15)
    # comment lines inside a continuation are dropped without a warning
    assert [n.values() for n in tree.nodes][-2:] == [["non-indented    after-comment"], ["indented     comment"]]


def test_returns_scanner_errors():
    label = "a" * 65536
    err = error_of(f"\n\t\tFROM image\n\t\tLABEL test={label}\n")
    assert err.message == "dockerfile line greater than max allowed size of 65535"
    assert err.span.line == 3
    # the limit is bufio.Scanner's: 65535 bytes plus the "\n"
    assert parse_text("FROM a\nRUN " + "x" * 65531 + "\n").nodes[1].values() == ["x" * 65531]
    error_of("FROM a\nRUN " + "x" * 65532 + "\n")
    error_of("FROM a\nRUN " + "é" * 40000 + "\n")  # bytes count, not characters


# --------------------------------------------------------------------------------------------------
# parser_heredoc_test.go
# --------------------------------------------------------------------------------------------------

HEREDOC_FILE = """
FROM alpine:3.6

ENV NAME=me

RUN ls

USER <<INVALID
INVALID

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN "<<NOHEREDOC"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-EXPAND
\texpand $NAME
EXPAND

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<EOF /quotes
"foo"
'bar'
EOF

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

COPY <<file.txt /dest
hello world
file.txt

RUN <<eo'f'
echo foo
eof

RUN <<eo\\'f
echo foo
eo'f

RUN <<'e'o\\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF
EOF

RUN <<  EOF  > foo
EOF
\t"""

# (name, content, expand, chomp, fd) per heredoc, per instruction after FROM
HEREDOC_EXPECTED = [
    [],  # ENV NAME=me
    [],  # RUN ls
    [],  # USER <<INVALID (USER takes no heredocs)
    [],  # INVALID (an instruction of its own)
    [("EMPTY", "", True, False, 0)],
    [("EMPTY2", "", True, False, 3)],
    [],  # RUN "<<NOHEREDOC"
    [("INDENT", "\tfoo\n\tbar\n", True, False, 0)],
    [("UNINDENT", "\tbaz\n\tquux\n", True, True, 0)],
    [("UNINDENT2", "\tbaz\n\tquux\n", True, True, 0)],
    [("EXPAND", "\texpand $NAME\n", True, True, 0)],
    [("NOEXPAND", "\tdon't expand $NAME\n", False, True, 0)],
    [("COPY", "echo hello world\necho foo bar\n", True, False, 0)],
    [("COMMENT", "# internal comment\necho hello world\necho foo bar # trailing comment\n", True, False, 0)],
    [("MOUNT", "echo hello\n", True, False, 0)],
    [("FILE1", "content 1\n", True, False, 0), ("FILE2", "content 2\n", True, False, 0)],
    [("EOF", "\"foo\"\n'bar'\n", True, False, 0)],
    [("X", "Y\n", True, False, 0), ("Y", "X\n", True, False, 0)],
    [("COMPLEX", "print('hello world')\n", True, False, 0)],
    [("file.txt", "hello world\n", True, False, 0)],
    [("eof", "echo foo\n", False, False, 0)],
    [("eo'f", "echo foo\n", True, False, 0)],
    [("eo'f", "echo foo\n", False, False, 0)],
    [("one two", "echo bar\n", False, False, 0)],
    [("$EOF", "", True, False, 0)],
    [("EOF", "", True, False, 0)],
    [("EOF", "", True, False, 0)],
]


def test_parse_extracts_heredocs():
    tree = parse_text(HEREDOC_FILE)
    got = [[(h.name, h.content, h.expand, h.chomp, h.fd) for h in node.heredocs] for node in tree.nodes[1:]]
    assert got == HEREDOC_EXPECTED
    # the heredoc bodies are not instructions; the line numbers account for them
    run_complex = tree.nodes[19]
    assert run_complex.values() == ["<<COMPLEX python3"]
    assert (run_complex.start_line, run_complex.end_line) == (74, 76)


def test_json_form_never_has_heredocs():
    tree = parse_text('\nFROM alpine:3.6\n\nRUN ["whoami"]\nRUN ["<<EOF"]\nRUN ["<<\'EOF\'"]\n\t')
    assert [n.heredocs for n in tree.nodes[1:]] == [(), (), ()]
    assert [n.shape for n in tree.nodes[1:]] == [EXEC] * 3


def test_heredoc_chomp():
    from builder.dockerfile.instructions import chomp_heredoc

    assert chomp_heredoc("\thello\n\tworld\n") == "hello\nworld\n"
    assert chomp_heredoc("\t\ta\n  \tb\n") == "a\n  \tb\n"


@pytest.mark.parametrize("word", ["<<EOF", "<<'EOF'", '<<"EOF"', "<<-EOF", "<<-'EOF'", '<<-"EOF"', '<<EO"F"',
                                  "<< EOF", "<<- EOF"])
def test_heredoc_word_valid(word):
    assert parse_heredoc_word(word).name == "EOF"


@pytest.mark.parametrize("word", ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"'])
def test_heredoc_word_invalid(word):
    with pytest.raises(DockerfileError):
        parse_heredoc_word(word)


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"])
def test_heredoc_word_not_a_heredoc(word):
    assert parse_heredoc_word(word) is None


def test_heredoc_word_flags():
    doc = parse_heredoc_word("3<<-'EOF'")
    assert (doc.name, doc.fd, doc.chomp, doc.expand) == ("EOF", 3, True, False)
    assert parse_heredoc_word("<<EOF").expand is True
    assert parse_heredoc_word("<<E\\'OF").expand is True   # an escaped quote is not quoting
    assert parse_heredoc_word("<<E'O'F").expand is False   # part of the word quoted


@pytest.mark.parametrize("line, names", [
    ("RUN <<EOF", ["EOF"]),
    ("RUN <<-EOF", ["EOF"]),
    ("RUN << EOF", ["EOF"]),
    ("RUN << -EOF", ["-EOF"]),
    ("RUN <<'EOF'", ["EOF"]),
    ("RUN 4<<EOF", ["EOF"]),
    ("RUN <<EOF <<EOF2", ["EOF", "EOF2"]),
    ("RUN '<<EOF'", []),
    ('RUN "<<EOF"', []),
    ("RUN <<- EOF", []),  # "<<-" and "EOF" are two words; BuildKit's own test passes vacuously here
    ("RUN cat <<A | tee <<-B >/out 2<<'C'", ["A", "B", "C"]),
])
def test_heredocs_from_line(line, names):
    assert [d.name for d in heredocs_from_line(line)] == names


def test_heredoc_errors_and_edges():
    err = error_of("FROM a\nRUN <<EOF\nbody\n")
    assert err.message == "unterminated heredoc"
    assert (err.span.line, err.span.end_line) == (2, 3)
    # the terminator must be the whole line ("\r\n" trimmed; for <<- leading tabs too)
    tree = parse_text("FROM a\r\nRUN <<-EOF\r\n\tx\r\n  EOF\r\n\t\tEOF\r\nRUN b\r\n")
    assert tree.nodes[1].heredocs[0].content == "\tx\r\n  EOF\r\n"
    assert [n.values() for n in tree.nodes] == [["a"], ["<<-EOF"], ["b"]]
    # heredoc lines are raw: no comments, continuations or directives are processed in them
    tree = parse_text("FROM a\nCOPY <<EOF /x\n# escape=`\nline \\\n\nEOF\nRUN a \\\n b\n")
    assert tree.nodes[1].heredocs[0].content == "# escape=`\nline \\\n\n"
    assert tree.nodes[2].values() == ["a  b"]
    # a continued instruction line can open a heredoc; ONBUILD passes it on
    tree = parse_text("FROM a\nONBUILD RUN \\\n  <<EOF cat\nhi\nEOF\n")
    node = tree.nodes[1]
    assert node.subcommand.values() == ["<<EOF cat"]
    assert [(h.name, h.content) for h in node.heredocs] == [("EOF", "hi\n")]
    assert (node.start_line, node.end_line) == (2, 5)
    # only RUN, COPY and ADD (directly or under ONBUILD) read heredocs
    tree = parse_text("FROM a\nCMD <<EOF\nEOF\nONBUILD CMD <<EOF\n")
    assert [n.keyword for n in tree.nodes] == ["from", "cmd", "eof", "onbuild"]
    # the heredoc is detected with "\" as the escape, whatever the escape directive says
    tree = parse_text("# escape=`\nFROM a\nRUN <<E\\OF\nx\nEOF\n")
    assert tree.nodes[1].heredocs[0].name == "EOF"


# --------------------------------------------------------------------------------------------------
# line_parsers_test.go and json_test.go
# --------------------------------------------------------------------------------------------------

def test_name_value_old_format():
    node = parse_text("LABEL foo bar").nodes[0]
    assert node.shape == LEGACY_PAIR and node.values() == ["foo", "bar", ""]
    # the legacy value is the whole remainder, spaces and quotes included
    assert parse_text("ENV a  b \"c d\"  ").nodes[0].values() == ["a", 'b "c d"', ""]


def test_name_value_new_format():
    node = parse_text("LABEL foo=bar thing=star").nodes[0]
    assert node.shape == PAIRS and node.values() == ["foo", "bar", "=", "thing", "star", "="]
    assert parse_text('ENV a="x y" b= c=d=e').nodes[0].values() == ["a", '"x y"', "=", "b", "", "=", "c", "d=e", "="]


def test_name_value_errors():
    err = error_of("FROM a\nENV foo")
    assert err.message == "ENV must have two arguments" and err.span.line == 2
    err = error_of("FROM a\nLABEL a=b c")
    assert err.message == 'Syntax error - can\'t find = in "c". Must be of the form: name=value'
    assert err.span.line == 2 and err.span.column == 11  # points at the word
    assert error_of("LABEL x").message == "LABEL must have two arguments"


@pytest.mark.parametrize("text, expected", [
    ("[]", []),
    ('[""]', [""]),
    ('["a"]', ["a"]),
    ('["a","b"]', ["a", "b"]),
    ('[ "a", "b" ]', ["a", "b"]),
    ('[\t"a",\t"b"\t]', ["a", "b"]),
    ('\t[\t"a",\t"b"\t]\t', ["a", "b"]),
    ('["abc 123", "♥", "☃", "\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000"]',
     ["abc 123", "♥", "☃", "\" \\ / \b \f \n \r \t \0"]),
])
def test_valid_json_arrays_of_strings(text, expected):
    node = parse_text("CMD " + text).nodes[0]
    assert node.shape == EXEC and node.is_json and node.values() == expected


@pytest.mark.parametrize("text", ['["a",42,"b"]', '["a",123.456,"b"]', '["a",{},"b"]', '["a",{"c": "d"},"b"]',
                                  '["a",["c"],"b"]', '["a",true,"b"]', '["a",false,"b"]', '["a",null,"b"]'])
@pytest.mark.parametrize("keyword", ["CMD", "RUN", "COPY", "VOLUME", "HEALTHCHECK CMD", "ONBUILD ENTRYPOINT"])
def test_json_arrays_with_non_strings_are_errors(keyword, text):
    err = error_of(f"FROM a\n{keyword} {text}\n")
    assert err.message == "when using JSON array syntax, arrays must be comprised of strings only"
    assert err.span.line == 2


@pytest.mark.parametrize("text", ["['a']", '["a"', '["a",]', '["a"] b', "[NaN]", '["a" "b"]', '{"a": "b"}'])
def test_invalid_json_is_the_shell_form(text):
    node = parse_text("RUN " + text).nodes[0]
    assert node.shape == SHELL and node.values() == [text]
    node = parse_text("COPY " + text).nodes[0]
    assert node.shape == WORDS and node.values() == text.split(" ")


def test_json_details():
    # Go decodes a lone surrogate escape to U+FFFD
    assert parse_text('CMD ["\\ud800x"]').nodes[0].values() == ["\ufffdx"]
    # an empty array is still the exec form (ENTRYPOINT [] clears the entrypoint)
    for text in ("ENTRYPOINT []", "HEALTHCHECK CMD []", "ONBUILD RUN []"):
        node = parse_text(text).nodes[0]
        node = node.subcommand or node
        assert node.is_json, text
    assert not parse_text("HEALTHCHECK CMD").nodes[0].is_json


# --------------------------------------------------------------------------------------------------
# directives_test.go, and directive handling in Parse
# --------------------------------------------------------------------------------------------------

def test_directives():
    tree = parse_text("#escape=\\\n# key = FOO bar\n\n# smth\nFROM a\n")
    assert [(d.name, d.value, d.line) for d in tree.directives] == [("escape", "\\", 1)]
    # keys are case-insensitive ("for some reason Moby implementation in case insensitive for escape")
    tree = parse_text("# EScape=\\\n# KEY = FOO bar\n\n# smth\nFROM a\n")
    assert [(d.name, d.value) for d in tree.directives] == [("escape", "\\")]


def test_syntax_directive():
    tree = parse_text("# syntax = dockerfile:experimental // opts\nFROM busybox\n")
    assert tree.directive("syntax") == "dockerfile:experimental // opts"
    assert tree.directives[0].line == 1
    tree = parse_text("\ufeff# syntax = myfrontend\nFROM busybox\n")
    assert tree.directive("syntax") == "myfrontend"
    assert parse_text("FROM busybox\nRUN ls\n").directive("syntax") is None
    # Parse knows only "#" directives: a shebang, "//" or a blank line ends the directives (the extra
    # formats of BuildKit's DetectSyntax are syntax detection, not parsing)
    assert parse_text("#!/bin/sh\n# syntax = x\nFROM a\n").directives == ()
    assert parse_text("//syntax=foo\n# syntax=x\nFROM a").directive("syntax") is None
    assert parse_text("\n# syntax = x\nFROM a\n").directives == ()


def test_check_directive():
    tree = parse_text("#check = skip=all // opts\nFROM busybox\n")
    assert tree.directive("check") == "skip=all // opts"
    tree = parse_text("# syntax=a\n# check=error=true\n# escape=`\nFROM a\n")
    assert [d.name for d in tree.directives] == ["syntax", "check", "escape"]
    assert tree.escape == "`"


def test_directive_rules():
    # only at the top; the first non-directive line ends them
    tree = parse_text("# comment\n# escape=`\nFROM a\nRUN b \\\n c\n")
    assert tree.directives == () and tree.escape == "\\"
    assert parse_text("# foo=bar\n# escape=`\nFROM a").directives == ()
    assert parse_text("FROM a\n# escape=`\nRUN b\n").directives == ()
    # blanks around "#", "=" and the value are allowed; the value keeps its case
    tree = parse_text("  #\t escape \t=  `  \n#SYNTAX=Docker/Dockerfile:1\nFROM a\n")
    assert [(d.name, d.value) for d in tree.directives] == [("escape", "`"), ("syntax", "Docker/Dockerfile:1")]
    # errors: a repeated directive, an escape other than \ or `
    err = error_of("# syntax=a\n# SYNTAX=b\nFROM a\n")
    assert err.message == "only one syntax parser directive can be used" and err.span.line == 2
    err = error_of("# escape=x\nFROM a\n")
    assert err.message == "invalid escape token 'x' does not match ` or \\"
    # a directive line is not a doc comment; other comments are (reset by a bare "#")
    tree = parse_text("# syntax=x\n# doc\n#\n# stage doc\nFROM a\n# ignored\n\nRUN b\n")
    assert tree.nodes[0].line.comments == ("stage doc",)
    assert tree.nodes[1].line.comments == ("ignored",)


def test_escape_directive_changes_continuation_and_words():
    tree = parse_text("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo `\"x`\"\nCOPY --chown=a`b c\\ d e\n")
    assert tree.escape == "`"
    assert tree.nodes[1].values() == ['dir c:\\   && echo `"x`"']
    assert [f.text for f in tree.nodes[2].flags] == ["--chown=ab"]
    assert tree.nodes[2].values() == ["c\\", "d", "e"]
    # with the backtick escape a trailing backslash is just a character
    assert parse_text("# escape=`\nRUN a\\\nRUN b").nodes[0].values() == ["a\\"]


# --------------------------------------------------------------------------------------------------
# Line handling (checklist section 1)
# --------------------------------------------------------------------------------------------------

def test_bom_and_line_endings():
    tree = parse_text("\ufeffFROM a\r\nRUN b \\\r\n c\r\n")
    assert [n.values() for n in tree.nodes] == [["a"], ["b  c"]]
    assert [(n.start_line, n.end_line) for n in tree.nodes] == [(1, 1), (2, 3)]
    # only a BOM at the very start is one
    assert parse_text("FROM a\n\ufeffRUN b\n").nodes[1].keyword_text == "\ufeffRUN"


def test_continuations():
    # trailing blanks after the escape are allowed; nothing is inserted at the join
    assert dump("RUN a\\ \t\nb") == ['(run "ab")']
    # a doubled escape at the end of a line is not a continuation
    assert dump("RUN a\\\\\nRUN b") == ['(run "a\\\\\\\\")', '(run "b")']
    # a line holding only the escape continues; continuation lines keep their indentation
    assert dump("RUN a\n\\\n  b\n") == ['(run "a")', '(b "")']
    assert dump("RUN a \\\n   b") == ['(run "a    b")']
    # continuation at EOF
    assert dump("FROM a\nRUN b \\") == ['(from "a")', '(run "b")']
    tree = parse_text("FROM a\nRUN b \\\n")
    assert (tree.nodes[1].start_line, tree.nodes[1].end_line) == (2, 2)
    # comments inside a continuation are dropped, "#" elsewhere is data
    assert dump("RUN a \\\n# c\n  # d\n b # e") == ['(run "a  b # e")']
    # a comment never continues
    assert dump("# a \\\nRUN b") == ['(run "b")']


def test_keywords_and_unknown_instructions():
    assert dump("from a\nFrOm b\n  \tRUN c") == ['(from "a")', '(from "b")', '(run "c")']
    tree = parse_text("FOO bar baz\nRUN2\n")
    assert [(n.keyword, n.shape, n.values()) for n in tree.nodes] == [("foo", NONE, []), ("run2", NONE, [])]
    assert dump("FOO bar") == ['(foo "")']
    # only [\t\v\f\r ] separates the keyword: U+00A0 is part of it
    assert parse_text("RUN\u00a0x").nodes[0].keyword_text == "RUN\u00a0x"


def test_flags():
    node = parse_text("COPY --from=a --chown='u g' \"--x=\\\"y\" -- --not-a-flag b").nodes[0]
    assert [f.text for f in node.flags] == ["--from=a", "--chown=u g"]
    assert node.values() == ['"--x=\\"y"', "--", "--not-a-flag", "b"]
    assert dump("RUN --a -- --b c") == ['(run ["--a"] "--b c")']
    assert dump("RUN --a --b") == ['(run ["--a" "--b"])']
    # flags are taken for every instruction, even those that never use them
    assert dump("ARG --x a") == ['(arg ["--x"] "a")']
    # a Unicode blank before the flags: BuildKit looks at bytes and stops at the first non-space one
    assert dump("RUN \u00a0--x y") == ['(run "--x y")']


def test_instruction_forms():
    assert dump("FROM --platform=$P busybox AS base") == ['(from ["--platform=$P"] "busybox" "AS" "base")']
    assert dump("EXPOSE 80\t443/udp") == ['(expose "80" "443/udp")']
    assert dump("USER  app:app  ") == ['(user "app:app")']
    assert dump("ARG a b=c \"d e\"") == ['(arg "a" "b=c" "\\"d e\\"")']
    assert dump("HEALTHCHECK NONE") == ['(healthcheck "NONE")']
    assert dump("HEALTHCHECK --interval=5s CMD curl -f x") == ['(healthcheck ["--interval=5s"] "CMD" "curl -f x")']
    assert dump('HEALTHCHECK CMD ["a", "b"]') == ['(healthcheck "CMD" "a" "b")']
    assert dump("ONBUILD RUN echo test") == ['(onbuild (run "echo test"))']
    assert dump("ONBUILD") == ["(onbuild)"]
    node = parse_text("ONBUILD --x COPY --from=a b c").nodes[0]
    assert [f.text for f in node.flags] == ["--x"]
    assert [f.text for f in node.subcommand.flags] == ["--from=a"]
    for text in ("RUN", "CMD", "COPY", "FROM", "ENV", "HEALTHCHECK", "WORKDIR"):
        assert parse_text(text).nodes[0].shape == NONE, text


def test_no_instructions():
    for text in ("", "\n", "# only a comment\n", "\ufeff", "   \n\t\n", "# syntax=x\n"):
        err = error_of(text)
        assert err.message == "file with no instructions"
        assert err.span.line >= 1


def test_error_spans_point_into_the_file():
    err = error_of("FROM a\nRUN b\nCMD [1]\n")
    assert (err.span.line, err.span.end_line) == (3, 3)
    err = error_of("FROM a\nENV \\\n  x\n")
    assert err.message == "ENV must have two arguments"
    assert (err.span.line, err.span.end_line) == (2, 3)
