"""Unit tests for dynamo.nemo_switchyard.body: parsing and byte-exact model rewriting."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynamo.nemo_switchyard.body import BodyError, parse, replace_model

# ---------------------------------------------------------------- parse


def test_parse_object():
    assert parse(b'{"model": "auto", "n": 1}') == {"model": "auto", "n": 1}


def test_parse_bytes_with_whitespace_and_non_ascii():
    assert parse(' \n{"text": "héllo ✓"}\n'.encode()) == {"text": "héllo ✓"}


@pytest.mark.parametrize("raw", [b"", b"not json", b'{"a": 1', b"{'a': 1}", b'{"a": 1,}', b"{\"a\": NaN}"])
def test_parse_rejects_non_json(raw: bytes):
    with pytest.raises(BodyError, match="not valid JSON"):
        parse(raw)


@pytest.mark.parametrize("raw,kind", [(b"[1, 2]", "list"), (b'"s"', "str"), (b"3", "int"), (b"null", "NoneType"), (b"true", "bool")])
def test_parse_rejects_non_objects(raw: bytes, kind: str):
    with pytest.raises(BodyError, match=f"must be a JSON object, not {kind}"):
        parse(raw)


def test_parse_rejects_invalid_utf8():
    with pytest.raises(BodyError):
        parse(b'{"model": "\xff\xfe"}')


def test_body_error_is_value_error():
    assert issubclass(BodyError, ValueError)


# ---------------------------------------------------------------- replace_model: examples


def test_replace_simple():
    assert replace_model(b'{"model":"auto","x":1}', "weak") == b'{"model":"weak","x":1}'


def test_replace_keeps_spacing_and_order():
    raw = b'{\n  "stream" : true ,\n  "model"  :\t "auto" ,\n  "x": [1,2]\n}'
    assert replace_model(raw, "m") == b'{\n  "stream" : true ,\n  "model"  :\t "m" ,\n  "x": [1,2]\n}'


def test_replace_preserves_numbers_byte_for_byte():
    raw = b'{"a": 1.0e5, "b": 12345678901234567890123, "c": -0.0, "d": 1E-7, "e": 1.50, "model": "auto", "f": 100000000000000000000.0}'
    out = replace_model(raw, "strong")
    assert out == raw.replace(b'"auto"', b'"strong"')


def test_nested_model_keys_untouched():
    raw = (
        b'{"metadata": {"model": "inner"}, "tools": [{"model": "t"}, {"x": {"model": "deep"}}],'
        b' "model": "auto", "extra": {"model": "auto"}}'
    )
    out = replace_model(raw, "chosen")
    assert out == (
        b'{"metadata": {"model": "inner"}, "tools": [{"model": "t"}, {"x": {"model": "deep"}}],'
        b' "model": "chosen", "extra": {"model": "auto"}}'
    )
    parsed = orjson.loads(out)
    assert parsed["model"] == "chosen"
    assert parsed["metadata"]["model"] == "inner" and parsed["extra"]["model"] == "auto"


def test_model_key_first_in_nested_before_top_level():
    raw = b'{"a": {"model": "x"}, "model": "auto"}'
    assert replace_model(raw, "y") == b'{"a": {"model": "x"}, "model": "y"}'


def test_escaped_key_is_recognised():
    raw = b'{"mod\\u0065l": "auto", "x": 1}'
    out = replace_model(raw, "w")
    assert out == b'{"mod\\u0065l": "w", "x": 1}'
    assert orjson.loads(out) == {"model": "w", "x": 1}


def test_escaped_key_uppercase_hex_and_full_escape():
    raw = b'{"\\u006D\\u006f\\u0064\\u0065\\u006c": "auto"}'
    assert orjson.loads(replace_model(raw, "w")) == {"model": "w"}


def test_similar_keys_not_replaced():
    raw = b'{"models": "a", "Model": "b", "model_name": "c", "xmodel": "d", "model": "auto"}'
    out = replace_model(raw, "w")
    assert orjson.loads(out) == {"models": "a", "Model": "b", "model_name": "c", "xmodel": "d", "model": "w"}


def test_duplicate_top_level_keys_all_replaced():
    raw = b'{"model": "a", "x": 1, "model": "b"}'
    out = replace_model(raw, "w")
    assert out == b'{"model": "w", "x": 1, "model": "w"}'
    assert orjson.loads(out)["model"] == "w"


def test_value_string_equal_to_model_is_not_a_key():
    raw = b'{"a": "model", "b": ["model", "model"], "model": "auto", "c": "model"}'
    out = replace_model(raw, "w")
    assert out == b'{"a": "model", "b": ["model", "model"], "model": "w", "c": "model"}'


def test_strings_with_escaped_quotes_and_backslashes():
    raw = (
        b'{"a": "say \\"model\\": \\"no\\"", "b": "ends with backslash \\\\", "c": "\\\\\\"", '
        b'"d": "{[\\"model\\":\\"x\\"]}", "model": "auto", "e": "\\\\"}'
    )
    out = replace_model(raw, "w")
    assert out == raw.replace(b'"model": "auto"', b'"model": "w"')
    expected = orjson.loads(raw)
    expected["model"] = "w"
    assert orjson.loads(out) == expected


def test_brackets_inside_strings_do_not_change_depth():
    raw = b'{"a": "}}}", "b": "[[[{{", "model": "auto"}'
    assert replace_model(raw, "w") == b'{"a": "}}}", "b": "[[[{{", "model": "w"}'


def test_original_model_value_with_escapes_fully_replaced():
    raw = b'{"model": "a\\"b\\\\c\\u00e9", "x": 1}'
    assert replace_model(raw, "w") == b'{"model": "w", "x": 1}'


def test_non_ascii_preserved_and_new_model_encoded():
    raw = '{"messages": [{"content": "héllo — 日本語 \\u00e9"}], "model": "auto"}'.encode()
    out = replace_model(raw, "modèle/日本")
    assert out == raw.replace(b'"auto"', '"modèle/日本"'.encode())
    assert orjson.loads(out)["model"] == "modèle/日本"


def test_new_model_with_quote_is_escaped():
    out = replace_model(b'{"model": "auto"}', 'we"ird\\name')
    assert orjson.loads(out) == {"model": 'we"ird\\name'}


@pytest.mark.parametrize(
    "raw",
    [b'{"x": 1}', b'{"model": null}', b'{"model": 5}', b'{"model": ["auto"]}', b'{"model": {"id": "auto"}}',
     b'{"meta": {"model": "auto"}}'],
)
def test_no_top_level_model_string_is_error(raw: bytes):
    with pytest.raises(BodyError, match="top-level 'model'"):
        replace_model(raw, "w")


def test_non_string_model_then_nested_string_not_replaced():
    raw = b'{"model": {"model": "x"}, "y": "z"}'
    with pytest.raises(BodyError):
        replace_model(raw, "w")


# ---------------------------------------------------------------- replace_model: property

_MARK = "\x00NEW-MODEL\x00"  # never produced by the strategies below
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
    | st.sampled_from(['"model"', "model", '\\"', "\\", '\\\\"', "}", "[", '"model": "x"'])
)
_keys = _text | st.just("model")
_nested = st.recursive(
    _leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=4),
    max_leaves=15,
)


@st.composite
def _documents(draw):
    others = draw(st.dictionaries(_text.filter(lambda k: k != "model"), _nested, max_size=6))
    model = draw(_text)
    position = draw(st.integers(min_value=0, max_value=len(others)))
    items = list(others.items())
    items.insert(position, ("model", model))
    return dict(items)


_formats = st.fixed_dictionaries(
    {
        "ensure_ascii": st.booleans(),
        "indent": st.sampled_from([None, 0, 2, "\t"]),
        "separators": st.sampled_from([None, (",", ":"), (", ", ": "), (" , ", " : "), (",", ":\t")]),
    }
)


def _encode(value, fmt) -> bytes:
    return json.dumps(value, ensure_ascii=fmt["ensure_ascii"], indent=fmt["indent"], separators=fmt["separators"]).encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_documents(), fmt=_formats, new_model=_text)
def test_replace_model_keeps_every_other_byte(doc, fmt, new_model):
    raw = _encode(doc, fmt)
    out = replace_model(raw, new_model)
    expected = dict(doc)
    expected["model"] = new_model
    assert json.loads(out) == expected
    assert list(json.loads(out)) == list(doc)  # key order kept


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_documents(), fmt=_formats)
def test_replace_model_then_back_is_identity(doc, fmt):
    raw = _encode(doc, fmt)
    out = replace_model(raw, _MARK)
    marker = orjson.dumps(_MARK)
    assert out.count(marker) == 1
    original_value = json.dumps(doc["model"], ensure_ascii=fmt["ensure_ascii"]).encode()
    assert out.replace(marker, original_value) == raw
