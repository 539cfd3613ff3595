"""The one KEY=VALUE parser of the command line, and the bounds on what spanex reads (spanex.limits)."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spanex.cli import parse_sets, parse_value, split_key
from spanex.limits import MAX_DEPTH, LimitError, check_plain, read_bounded


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("0.5", 0.5), ("true", True), ("[0.1, 0.2]", [0.1, 0.2]), ('"x y"', "x y"), ("'x'", "x"),
    ("logistic", "logistic"), ("1.2.3", "1.2.3"), ("  7 ", 7), ("{a = 1}", {"a": 1}), ("inf", float("inf")),
    ("[[1, 2], [3]]", [[1, 2], [3]]),
])
def test_values_are_toml_and_bare_words_are_strings(text, value):
    assert parse_value(text) == value


@pytest.mark.parametrize("text, error, message", [
    ("[1,", ValueError, "not a valid TOML value"),
    ('"open', ValueError, "not a valid TOML value"),
    ("1\nw = 2", ValueError, "more than one value"),
    ("1979-05-27", TypeError, "holds a date"),
    ("[" * 5000 + "]" * 5000, ValueError, "nested too deeply"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), LimitError, f"nested more than {MAX_DEPTH}"),
])
def test_bad_values_are_refused_with_the_argument_named(text, error, message):
    with pytest.raises(error, match=message) as e:
        parse_value(text, "--set k")
    assert str(e.value).startswith("--set k")


def test_parse_sets_keys_and_last_wins():
    assert parse_sets(["a=1", "exp-1.b_2=[1,2]", "a=x=y"]) == {"a": "x=y", "exp-1.b_2": [1, 2]}
    assert split_key("exp-1.b") == ("exp-1", "b") and split_key("b") == (None, "b")
    for bad in ("noequals", "=1", "a b=1", "a.b.c=1", ".a=1", "a.=1"):
        with pytest.raises(ValueError, match="--param expects KEY=VALUE"):
            parse_sets([bad], "--param")


# Property: whatever the text, a clear ValueError/TypeError or plain data, never another exception.
# derandomize + no database: the same 300 examples on every run.
@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}\"'=,.:-_ \n\t#01a9eE+x") + ["\x00", "é"]), max_size=40))
def test_any_text_gives_plain_data_or_a_clear_error(text):
    try:
        out = parse_sets([f"k={text}"])
    except (ValueError, TypeError) as e:
        assert str(e).startswith("--set")
    else:
        check_plain(out["k"])


def test_check_plain_is_iterative():
    v = 0
    for _ in range(100_000):                  # far beyond the recursion limit
        v = [v]
    with pytest.raises(LimitError, match=f"nested more than {MAX_DEPTH}"):
        check_plain(v, "x")
    assert check_plain({"a": [1, [2.5, None, {"b": "c"}]]}) == {"a": [1, [2.5, None, {"b": "c"}]]}
    with pytest.raises(TypeError, match="not plain data"):
        check_plain({"a": object()})


def test_read_bounded(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10)
    assert read_bounded(f, 10) == b"x" * 10
    with pytest.raises(LimitError, match="has 10 bytes, more than the limit of 9"):
        read_bounded(f, 9, "f")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)                           # no writer: a blocking open would never return
    with pytest.raises(LimitError, match="a FIFO"):
        read_bounded(fifo, 10)
    with pytest.raises(LimitError, match="a character device"):
        read_bounded("/dev/zero", 10)
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "none", 10)
