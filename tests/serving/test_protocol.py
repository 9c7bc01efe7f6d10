"""Request bodies to rows, outputs to response bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import _core
from packflow.jsonl import parse_lines
from packflow.serving.protocol import (
    BadBody,
    Shape,
    body_format,
    document_error,
    parse_body,
    render,
)


def test_body_format_reads_the_media_type():
    assert body_format(None) == "application/json"
    assert body_format(b"Application/JSON; charset=utf-8") == "application/json"
    assert body_format(b"application/x-ndjson") == "application/x-ndjson"


def test_an_object_is_one_row():
    p = parse_body(b'{\n  "a": 1\n}', "application/json")
    assert (p.data, p.rows, p.shape) == (b'{   "a": 1 }\n', 1, Shape.OBJECT)


def test_an_array_is_one_row_per_item():
    p = parse_body(b'[{"a": 1}, {"b": {"c": [1, 2]}}]', "application/vnd.api+json")
    assert (p.data, p.rows, p.shape) == (b'{"a": 1}\n{"b": {"c": [1, 2]}}\n', 2, Shape.ARRAY)
    assert [json.loads(x) for x in p.data.splitlines()] == [{"a": 1}, {"b": {"c": [1, 2]}}]


def test_json_lines_are_used_as_they_are():
    p = parse_body(b'{"a": 1}\n{"a": 2}', "application/jsonlines")
    assert (p.data, p.rows, p.shape) == (b'{"a": 1}\n{"a": 2}\n', 2, Shape.LINES)
    assert p.content_type == "application/jsonlines"


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b'{"a": 1}\n\n{"a": 2}', 2),
        (b'\n{"a": 1}', 1),
        (b' \t\r\n{"a": 1}\n', 1),
        (b'{"a": 1}\n{"a": 2}\n  \n{"a": 3}', 3),
    ],
)
def test_a_blank_json_lines_line_is_refused_by_number(body, line):
    # The engine skips blank lines, which would leave the request one output
    # short without a word.
    with pytest.raises(BadBody, match=f"line {line} is blank"):
        parse_body(body, "application/jsonlines")


def test_kserve_instances():
    p = parse_body(b'{"instances": [{"a": 1}], "parameters": {}}', "text/plain", instances=True)
    assert (p.data, p.rows, p.shape) == (b'{"a": 1}\n', 1, Shape.INSTANCES)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": 1,}', "line 1: invalid JSON at column 9: expected a string key"),
        (b'[{"a": 1}\n,\n{"a" 2}]', "line 3: invalid JSON at column 6: expected ':'"),
        (b"[{}, null]", "item 1 of the array is null, not a JSON object"),
        (b"42", "the body is a number, not a JSON object or an array of objects"),
        (b'{"a": "\xff"}', "line 1: invalid UTF-8 at column 8"),
        (b"{} []", "line 1: invalid JSON at column 4: extra data after the value"),
    ],
)
def test_bad_json_bodies(body, message):
    try:
        payload = parse_body(body, "application/json")
    except BadBody as err:
        assert str(err) == message
        assert err.status == 400
        return
    # Cut without reading inside its items (the body is parsed once, by the
    # engine): the engine refuses the bad item, and the answer is then the
    # document's own error, as if every item had been checked on arrival.
    assert parse_lines(payload.data).errors
    assert document_error(payload) == message


def test_good_bodies_have_no_document_error():
    for body in (b'{"a": 1}', b'[{"a": 1}, {"b": [1, {"c": "}"}]}]'):
        assert document_error(parse_body(body, "application/json")) is None
    assert document_error(parse_body(b"{}\n", "application/jsonlines")) is None


@pytest.mark.parametrize("instances", [False, True])
@pytest.mark.parametrize(
    "media_type", ["multipart/form-data", "application/octet-stream", "image/png", "text/html"]
)
def test_types_that_cannot_be_json_are_415_on_every_route(media_type, instances):
    with pytest.raises(BadBody) as err:
        parse_body(b'{"instances": []}', media_type, instances=instances)
    assert err.value.status == 415
    assert str(err.value).startswith(f"unsupported Content-Type {media_type!r}: send ")


@pytest.mark.parametrize("media_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_text_and_curl_form_types_are_read_as_json(media_type):
    p = parse_body(b'{"a": "x=1&y=2"}', media_type)
    assert (p.data, p.rows, p.shape, p.content_type) == (
        b'{"a": "x=1&y=2"}\n',
        1,
        Shape.OBJECT,
        "application/json",
    )
    # A real form body is not JSON: a 400 that says so, not a form decode.
    with pytest.raises(BadBody) as err:
        parse_body(b"a=1&b=2", media_type)
    assert err.value.status == 400
    assert str(err.value) == "line 1: invalid JSON at column 1: expected a value"


@pytest.mark.parametrize("instances", [False, True])
@pytest.mark.parametrize("media_type", ["application/json", "application/jsonlines", "image/png"])
@pytest.mark.parametrize("body", [b"", b"\n", b" \t\r\n"])
def test_an_empty_body_is_400_whatever_its_type(body, media_type, instances):
    with pytest.raises(BadBody) as err:
        parse_body(body, media_type, instances=instances)
    assert err.value.status == 400
    assert str(err.value).startswith("the body is empty: send a JSON object")


def test_render_each_shape():
    lines = [b'{"a":1}', b'{"a":2}']
    assert render(Shape.OBJECT, lines[:1]) == b'{"a":1}'
    assert render(Shape.ARRAY, lines) == b'[{"a":1},{"a":2}]'
    assert render(Shape.ARRAY, []) == b"[]"
    assert render(Shape.LINES, lines) == b'{"a":1}\n{"a":2}\n'
    assert render(Shape.LINES, []) == b""
    assert render(Shape.INSTANCES, lines) == b'{"predictions":[{"a":1},{"a":2}]}'


@pytest.mark.parametrize(
    ("body", "media", "says"),
    [
        (b'{"a": NaN}', "application/json", "line 1: invalid JSON at column 7: NaN is not JSON"),
        (b'[{"a": 1},\n {"a": -Infinity}]', "application/json", "line 2: invalid JSON at column 8"),
        (
            b'{"a": 1}\n{"a": Infinity}\n',
            "application/jsonlines",
            "line 2: invalid JSON at column 7",
        ),
        (b'{"instances": [{"a": NaN}]}', "application/json", "column 22: NaN is not JSON"),
    ],
)
def test_nan_and_infinity_literals_are_refused(body, media, says):
    instances = body.startswith(b'{"instances"')
    with pytest.raises(BadBody, match=says):
        parse_body(body, media, instances=instances)


@pytest.mark.parametrize(
    "body",
    [b'{"a": "NaN"}', b'{"NaN": 1, "b": "-Infinity"}', b'{"a\\"NaN": "x\\\\"}', b'{"a": 1e308}'],
)
def test_the_words_inside_strings_are_fine(body):
    assert parse_body(body, "application/json").rows == 1


@pytest.mark.parametrize("body", [b'{"a": 1}\n\n', b'{"a": 1}\r\n\r\n  ', b'{"a": 1}\n \n\t\n'])
def test_blank_lines_at_the_end_are_nobodys_rows(body):
    p = parse_body(body, "application/jsonlines")
    assert (p.data, p.rows) == (b'{"a": 1}\n', 1)


def test_a_string_left_open_does_not_make_the_constant_search_quadratic():
    # Each quote of an unclosed run of escaped quotes used to restart the
    # search, which then scanned to the line's end: hours for 4 MB, holding
    # the event loop. Run apart, so that a regression fails instead of hanging.
    import subprocess
    import sys

    code = (
        "from packflow.serving.protocol import _refuse_constants\n"
        "_refuse_constants(b'{\"a\": \"' + b'\\\\\"' * 2_000_000 + b' NaN')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"N", b"a", b"I", b"n", b"f", b"i", b"t", b"y", b"\0", b'"', b"1", b" "])
        | st.sampled_from([b"NaN", b"Infinity", b"Infinit", b"Na"]),
        max_size=60,
    )
)
def test_the_constant_word_test_agrees_with_substring_search(pieces):
    data = b"".join(pieces)
    assert _core.holds_constant_word(data) == (b"NaN" in data or b"Infinity" in data)
