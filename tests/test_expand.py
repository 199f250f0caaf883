"""Unit tests of builder.dockerfile.expand beyond BuildKit's case files.

Expected values were checked against BuildKit's lex.go (compiled from the BuildKit mirror).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.dockerfile.expand import ExpansionResult, ShellLexer, expand_heredoc_body, go_quote
from builder.errors import DockerfileError, ExpansionError

PLAIN = ShellLexer("\\")


def _err(word: str, env=None, lexer: ShellLexer = PLAIN) -> str:
    with pytest.raises(ExpansionError) as info:
        lexer.process_word(word, env or {})
    return str(info.value)


# -- error texts ------------------------------------------------------------------------------

@pytest.mark.parametrize("word,reason", [
    ("${}", "syntax error: bad substitution"),
    ("${:}", "syntax error: bad substitution"),
    ("${{a}", "syntax error: bad substitution"),
    ("${", "syntax error: missing '}'"),
    ("${a:", "syntax error: missing '}'"),
    ("${a:}", "syntax error: missing '}'"),
    ("${a-'x}", "syntax error: missing '}'"),
    ("${a:-${b?inner}", "syntax error: missing '}'"),
    ("${a/x/y", "syntax error: missing '}'"),
    ("${a/x}", "syntax error: missing '/' in ${}"),
    ("${a//}", "syntax error: missing '/' in ${}"),
    ("${a", "unsupported modifier (\ufffd) in substitution"),
    ("${.}", "unsupported modifier (.) in substitution"),
    ("${a=x}", "unsupported modifier (=) in substitution"),
    ("${a:=x}", "unsupported modifier (:=) in substitution"),
    ("${a:x}", "unsupported modifier (:x) in substitution"),
    ("${a:#x}", "unsupported modifier (:#) in substitution"),
    ("${a:%%x}", "unsupported modifier (:%) in substitution"),
    ("${a?}", "a: is not allowed to be unset"),
    ("${a:?}", "a: is not allowed to be unset"),
    ("${NULL:?}", "NULL: is not allowed to be empty"),
    ("${a?custom $b}", "a: custom "),
    ("${a:-${b?inner}}", "b: inner"),
    ("${a:-${}}", "syntax error: bad substitution"),
    ("'abc", "unexpected end of statement while looking for matching single-quote"),
    ('"abc', "unexpected end of statement while looking for matching double-quote"),
    ('"abc\\', "unexpected end of statement while looking for matching double-quote"),
    ("${PWD#\\x}", "invalid pattern (\\x) in substitution: invalid escape '\\x'"),
    # the suffix forms report the reversed pattern, as BuildKit does
    ("${PWD%x\\y}", "invalid pattern (\\yx) in substitution: invalid escape '\\y'"),
    ("${PWD/\\q/r}", "invalid pattern (\\q) in substitution: invalid escape '\\q'"),
    ("${PWD#$TRAIL}", "invalid pattern (a\\) in substitution: invalid escape '\\\ufffd'"),
])
def test_error_texts(word, reason):
    env = {"PWD": "/home", "NULL": "", "TRAIL": "a\\"}
    assert _err(word, env) == f"failed to process {go_quote(word)}: {reason}"


def test_error_is_a_dockerfile_error_with_details():
    with pytest.raises(DockerfileError) as info:
        PLAIN.process_word("x${a:?need a}", {})
    assert isinstance(info.value, ExpansionError)
    assert info.value.message == 'failed to process "x${a:?need a}": a: need a'
    assert info.value.reason == "a: need a"
    assert info.value.word == "x${a:?need a}"


@pytest.mark.parametrize("text,quoted", [
    ("plain", '"plain"'),
    ('quo"te\\', '"quo\\"te\\\\"'),
    ("tab\there\n", '"tab\\there\\n"'),
    ("\x01\x7f", '"\\x01\\x7f"'),
    ("\u00a0\ufeff", '"\\u00a0\\ufeff"'),
    ("😀 é 한", '"😀 é 한"'),
])
def test_go_quote(text, quoted):
    assert go_quote(text) == quoted


def test_deep_nesting_is_an_expansion_error():
    word = "${a:-" * 3000 + "x" + "}" * 3000
    assert "nested too deeply" in _err(word)
    assert PLAIN.process_word("${a:-" * 20 + "x" + "}" * 20, {}) == "x"


# -- plain expansion ---------------------------------------------------------------------------

@pytest.mark.parametrize("word,expected", [
    ("${F%%/*} ${F%/*} ${F##*/} ${F#*/}", " /usr/local bin usr/local/bin"),
    ("${F//o/$R} ${F/o/$R}", "/usr/l<o>cal/bin /usr/l<$0>cal/bin"),  # Go template only for //
    ("${F//o/\\$0}", "/usr/l\\ocal/bin"),
    ("${F//$STAR/-}", "-"),  # Go ignores the empty match right after a match
    ("${F/$STAR/-}", "-"),
    ("${G//$XSTAR/-}", "abc"),
    ("$F$", "/usr/local/bin$"),
    ("$1x ${10} $@@", "x  @"),
    ("\ufeff$F", "/usr/local/bin"),  # Go's scanner drops a leading BOM
    ("a\ufeff$G", "a\ufeffabc"),
    ("${F:+set}${UNSET:+set}${EMPTY:+set}${EMPTY+set}", "setset"),
    ("${UNSET-d}${EMPTY-d}${EMPTY:-e}", "de"),
])
def test_expansion(word, expected):
    env = {"F": "/usr/local/bin", "R": "<$0>", "STAR": "*", "G": "abc", "XSTAR": "x*", "EMPTY": ""}
    assert PLAIN.process_word(word, env) == expected


def test_env_is_case_sensitive():
    assert PLAIN.process_word("$path|$PATH", {"PATH": "/bin"}) == "|/bin"


def test_fast_path_returns_input():
    word = "no specials here, < not even > this"
    assert PLAIN.process_word(word, {}) is word
    assert PLAIN.process_words("  a\tb \u3000c  ", {}) == ["a", "b", "c"]
    assert PLAIN.process_words("a\x1cb", {}) == ["a\x1cb"]  # not whitespace for Go


def test_backtick_escape():
    lexer = ShellLexer("`")
    assert lexer.process_word('`$X `` \\$X "`""', {"X": "x"}) == '$X ` \\x "'
    assert lexer.process_word("C:\\path\\$X", {"X": "x"}) == "C:\\path\\x"


# -- process_words -----------------------------------------------------------------------------

@pytest.mark.parametrize("word,expected", [
    ("a << b", ["a", "<< b"]),        # "<<" and the blanks after it stay with the next word
    ('a "" b', ["a", "b"]),
    ("'a  b' c\\ d", ["a  b", "c d"]),
    ("$V x", ["1", "2", "x"]),
    ('"$V" x', ["1 2", "x"]),
    # BuildKit drops what precedes a nested ${…} form in the same word
    ("80${x:-/tcp}", ["/tcp"]),
    ('pre"${x:-b}" c', ["b", "c"]),
    ("80${V}", ["801", "2"]),
])
def test_process_words(word, expected):
    assert PLAIN.process_words(word, {"V": "1 2"}) == expected


# -- modes -------------------------------------------------------------------------------------

def test_raw_quotes():
    lexer = ShellLexer(raw_quotes=True)
    assert lexer.process_word("'a b'\"c $X\"", {"X": "x"}) == "'a b'\"c x\""
    assert lexer.process_words("'a b' \"c d\"", {}) == ["'a b'", '"c d"']


def test_raw_escapes():
    lexer = ShellLexer(raw_escapes=True)
    # inside double quotes a non-special escaped char keeps the escape twice, as in BuildKit
    assert lexer.process_word('a\\ b\\$c "\\t\\$"', {}) == 'a\\ b\\$c \\\\t\\$'
    assert lexer.process_words('a\\ b\\$c "\\t\\$"', {}) == ["a\\ b\\$c", "\\\\t\\$"]
    assert lexer.process_word("trailing\\", {}) == "trailing\\"
    # modifier words are lexed without raw escapes, patterns with them
    assert lexer.process_word("${U:-\\$x} ${P#\\*}", {"P": "*y"}) == "$x y"


def test_skip_unset_env():
    lexer = ShellLexer(skip_unset_env=True)
    word = "$X ${Y} ${Z:-d} ${W//a/b} ${V#p*} ${U:+$X} ${X:-no} $"
    # note: BuildKit writes an unset ${W//a/b} back with a single slash
    assert lexer.process_word(word, {"X": "x"}) == "x ${Y} ${Z:-d} ${W/a/b} ${V#p*} ${U:+x} x $"
    assert lexer.process_word("${Y:?boom}", {}) == "${Y:?boom}"
    assert _err("${Y:?boom}", {"Y": ""}, lexer).endswith("Y: boom")


def test_skip_process_quotes():
    lexer = ShellLexer(skip_process_quotes=True)
    assert lexer.process_word("'$X' \"a b\" \\$X", {"X": "x"}) == "'x' \"a b\" $X"
    assert lexer.process_words("'$X' \"a b\"", {"X": "x"}) == ["'x'", '"a', 'b"']
    assert lexer.process_word("it's", {}) == "it's"


HEREDOC_LINE_LEXER = ShellLexer(raw_quotes=True, raw_escapes=True, skip_unset_env=True)


def test_heredoc_line_mode():
    """parser.go heredocsFromLine: words keep quotes, escapes and unset variables verbatim."""
    line = "cat <<EOF >out <<  \"END\" <<-  X ${X:-y} $H 'a b' x\\ y"
    assert HEREDOC_LINE_LEXER.process_words(line, {}) == [
        "cat", "<<EOF", ">out", "<<  \"END\"", "<<-", "X", "${X:-y}", "$H", "'a b'", "x\\ y"]


def _heredoc_expands(rest: str) -> tuple[str, bool]:
    """parser.go heredocFromMatch: compare quote counts with and without raw quotes."""
    cooked = ShellLexer(skip_unset_env=True).process_words(rest, {})
    raw = ShellLexer(raw_quotes=True, skip_unset_env=True).process_words(rest, {})
    assert len(cooked) == len(raw) == 1

    def count(word: str) -> int:
        return word.count("'") + word.count('"')

    return cooked[0], count(cooked[0]) == count(raw[0])


@pytest.mark.parametrize("rest,name,expand", [
    ("EOF", "EOF", True),
    ("'EOF'", "EOF", False),
    ('"EOF"', "EOF", False),
    ('EO"F"', "EOF", False),
    ("eo'f'", "eof", False),
    ("eo\\'f", "eo'f", True),      # parser_heredoc_test.go: an escaped quote still expands
    ("'e'o\\'f", "eo'f", False),
    ("$UNSET", "$UNSET", True),
])
def test_heredoc_delimiter_quoting(rest, name, expand):
    assert _heredoc_expands(rest) == (name, expand)


# -- process_word_with_matches -----------------------------------------------------------------

@pytest.mark.parametrize("word,env,result,matched,unmatched", [
    ("x", {"DUMMY": "dummy"}, "x", set(), set()),
    ("x ${UNUSED}", {}, "x ", set(), {"UNUSED"}),
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  ", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy", {"FOO", "BAR"}, set()),
    ("${FOO///}", {}, "", set(), {"FOO"}),
    ("$1 $@ ${#}", {}, "  ", set(), {"1", "@", "#"}),
    ("'$NOPE' \\$NOPE", {}, "$NOPE $NOPE", set(), set()),
])
def test_process_word_with_matches(word, env, result, matched, unmatched):
    res = PLAIN.process_word_with_matches(word, env)
    assert isinstance(res, ExpansionResult)
    assert res.result == result
    assert res.matched == frozenset(matched)
    assert res.unmatched == frozenset(unmatched)
    assert res.words == tuple(PLAIN.process_words(word, env))


def test_with_matches_platform_release_name():
    word = "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz"
    env = {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm"}
    res = PLAIN.process_word_with_matches(word, env)
    assert res.result == "something-v1.2.3.linux-arm.tar.gz"
    assert res.unmatched == {"TARGETVARIANT"}
    res = PLAIN.process_word_with_matches(word, {**env, "TARGETVARIANT": "v7"})
    assert res.result == "something-v1.2.3.linux-arm-v7.tar.gz"
    assert res.matched == {"VERSION", "TARGETOS", "TARGETARCH", "TARGETVARIANT"}


# -- heredoc bodies ----------------------------------------------------------------------------

@pytest.mark.parametrize("body,expected", [
    ('"quotes in file"\n', '"quotes in file"\n'),   # testCopyHeredocSpecialSymbols
    ("\\\n", "\n"),
    ("\\\\\n", "\\\n"),
    ("\\$\n", "$\n"),
    ("it's $NAME and '${NAME}' \"$NAME\"\n", "it's me and 'me' \"me\"\n"),
    ("${NAME:-x} ${MISSING:-default} $MISSING.\n", "me default .\n"),
    ("cat <<EOF\n", "cat <<EOF\n"),
    ("trailing\\", "trailing"),
])
def test_heredoc_body(body, expected):
    assert expand_heredoc_body(body, {"NAME": "me"}) == expected


def test_heredoc_body_errors():
    with pytest.raises(ExpansionError, match=r"V: is not allowed to be unset"):
        expand_heredoc_body("x ${V?}\n", {})


# -- property: nothing but ExpansionError escapes ----------------------------------------------

_ALPHABET = st.sampled_from(
    list("'\"${}:#%/\\`-+?=*@!0123 \t\nabcXY_é한😀\ufeff\x00\u00a0") + ["${", "\\$"])
_LEXERS = [ShellLexer(esc, raw_quotes=rq, raw_escapes=re_, skip_process_quotes=spq, skip_unset_env=sue)
           for esc in ("\\", "`") for rq in (False, True) for re_ in (False, True)
           for spq in (False, True) for sue in (False, True)]


@settings(max_examples=600, deadline=None)
@given(text=st.lists(_ALPHABET, max_size=40).map("".join),
       lexer=st.sampled_from(_LEXERS),
       env=st.dictionaries(st.sampled_from(["a", "X", "0", "_", "é"]),
                           st.text(alphabet="*?\\/ab$ {}", max_size=6), max_size=4))
def test_only_expansion_errors(text, lexer, env):
    for call in (lexer.process_word, lexer.process_words, lexer.process_word_with_matches):
        try:
            call(text, env)
        except ExpansionError as exc:
            assert str(exc).startswith("failed to process ")
