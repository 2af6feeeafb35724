"""plait.functional: the shared rules (errors as data, valueify, first error wins), text ops, coerce."""

import inspect

import pytest

import plait.functional as F
from plait import Parameter, Value, ValueKind, valueify
from plait.functional._core import functional
from plait.ops import Op
from plait.tracing.proxy import OPERATORS
from plait.values import FormatField

ERR_A = Value(ValueKind.ERROR, ValueError("first"), ref="node_a")
ERR_B = Value(ValueKind.ERROR, ValueError("second"), ref="node_b")


class Unprintable:
    def __str__(self):
        raise RuntimeError("no str")

    def __repr__(self):
        raise RuntimeError("no repr")


# Every op but the transport op, which is configured like LLMInference (bad settings raise
# ConfigError at once) and is a model call, not a function of its inputs.
DATA_OPS = [name for name in F.__all__ if name != "chat_complete"]


def test_public_names():
    assert F.__all__ == [
        "add",
        "chat_complete",
        "coerce",
        "concat",
        "div",
        "extract_meta",
        "extract_text",
        "format",
        "is_error",
        "lower",
        "map_values",
        "max",
        "mean",
        "merge",
        "min",
        "mul",
        "parse_structured",
        "render",
        "select",
        "stack_structured",
        "strip",
        "sub",
        "sum",
        "unwrap_or",
        "upper",
        "with_meta",
        "zip_values",
    ]
    assert F.__all__ == sorted(F.__all__)
    assert all(isinstance(getattr(F, name), Op) for name in DATA_OPS)
    assert not isinstance(
        F.chat_complete, Op
    )  # a model call: a module node, see test_chat_complete


def test_placeholder_operators_are_registered():
    assert OPERATORS["select"] is F.select
    assert (OPERATORS["add"], OPERATORS["sub"], OPERATORS["mul"], OPERATORS["div"]) == (
        F.add,
        F.sub,
        F.mul,
        F.div,
    )


def test_ops_keep_their_names_docs_and_signatures():
    assert F.render.name == "render"
    assert F.select.__doc__.startswith("The part of ``value`` at ``path``")
    assert list(inspect.signature(F.concat).parameters) == ["parts", "sep"]
    assert F.add.name == "add" and F.add.__doc__ == "``left + right``."
    assert F.upper.kind is ValueKind.TEXT and F.select.kind is None


def test_first_error_in_argument_order_wins_and_the_rest_are_causes():
    out = F.concat("x", ERR_A, "y", ERR_B)
    assert out.kind is ValueKind.ERROR
    assert out.payload is ERR_A.payload
    assert out.meta["op"] == "concat"
    assert out.meta["causes"] == [ERR_B]
    assert out.meta["sources"] == ["node_a", "node_b"]


def test_errors_are_found_deep_inside_structured_inputs():
    out = F.merge({"a": {"b": [1, ERR_B]}}, ERR_A)
    assert out.payload is ERR_B.payload
    assert out.meta["causes"] == [ERR_A]
    nested = Value(ValueKind.STRUCTURED, {"k": ERR_A})
    assert F.select(nested, "other", default=1).payload is ERR_A.payload


def test_the_same_error_twice_is_reported_once():
    out = F.add(ERR_A, ERR_A)
    assert out.payload is ERR_A.payload
    assert out.meta["causes"] == []


def test_plain_exceptions_are_errors_too():
    boom = KeyError("boom")
    out = F.upper(boom)
    assert out.kind is ValueKind.ERROR and out.payload is boom
    assert out.meta == {"op": "upper", "causes": []}


def test_an_exception_in_the_body_becomes_an_error_naming_op_and_sources():
    out = F.div(Value(ValueKind.INT, 4, ref="n1"), Value(ValueKind.INT, 0, ref="n2"))
    assert isinstance(out.payload, ZeroDivisionError)
    assert out.meta == {"op": "div", "sources": ["n1", "n2"]}


def test_plain_values_and_parameters_are_accepted():
    assert F.upper("hi") == Value(ValueKind.TEXT, "HI")
    prompt = Parameter("be brief", description="style")
    assert F.upper(prompt).payload == "BE BRIEF"
    assert F.concat(prompt, "!", sep=" ").payload == "be brief !"


def test_results_of_ops_have_no_ref_of_their_own():
    assert F.upper(Value(ValueKind.TEXT, "a", ref="n1")).ref is None


def test_wrong_call_signature_is_a_type_error_not_data():
    with pytest.raises(TypeError):
        F.upper()
    with pytest.raises(TypeError):
        F.add(1, 2, 3)


def test_decorator_without_short_circuit_sees_errors():
    @functional(short_circuit=False)
    def kind_name(value):
        return value.kind.name

    assert isinstance(kind_name, Op) and kind_name.fold and kind_name.takes_values
    assert kind_name(ERR_A).payload == "ERROR"


def test_decorator_stamps_op_and_sources_on_a_returned_error():
    @functional(options=("label",))
    def refuse(value, label=""):
        return Value(ValueKind.ERROR, ValueError(f"no {label}"), meta={"hint": "x"})

    out = refuse(Value(ValueKind.TEXT, "t", ref="src"), label="thanks")
    assert str(out.payload) == "no thanks"
    assert out.meta == {"op": "refuse", "sources": ["src"], "hint": "x"}


def test_an_error_in_an_option_also_short_circuits():
    out = F.concat("a", "b", sep=ERR_A)
    assert out.payload is ERR_A.payload


JUNK = [
    None,
    object(),
    Unprintable(),
    {"a": [ValueError("nested")]},
    [Unprintable()],
    b"\xff\xfe",
    float("nan"),
    Value(ValueKind.FSTRING, ("a", object())),
    Value(ValueKind.RESPONSE, None),
]


@pytest.mark.parametrize("name", DATA_OPS)
@pytest.mark.parametrize("junk", JUNK, ids=lambda j: type(j).__name__)
def test_ops_never_raise_for_nonsense_input(name, junk):
    op = getattr(F, name)
    args, kwargs = [], {}
    for param in inspect.signature(op).parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            args += [junk, junk]
        elif param.kind is param.VAR_KEYWORD:
            kwargs["extra"] = junk
        elif param.default is param.empty:
            args.append(junk)
    out = op(*args, **kwargs)
    assert isinstance(out, Value)


def test_render_fills_named_fields():
    out = F.render("Rate {item} from 1 to {top}.", {"item": "this essay", "top": 5})
    assert out == Value(ValueKind.TEXT, "Rate this essay from 1 to 5.")


def test_render_keyword_fields_win_over_the_mapping():
    assert F.render("{a}{b}", {"a": "1", "b": "2"}, b="3").payload == "13"
    assert F.render("{a}", a="only keywords").payload == "only keywords"


def test_render_coerces_fields_and_applies_format_specs():
    out = F.render(
        "{n:.2f} {data} {data[k]} {flag} {word!r}",
        {"n": "2", "data": {"k": [1, "x"]}, "flag": True, "word": valueify("w")},
    )
    assert out.payload == '2.00 {"k": [1, "x"]} [1, "x"] True \'w\''
    assert F.render("{{literal}} {x}", {"x": 1}).payload == "{literal} 1"


def test_render_missing_field_is_an_error_naming_the_key():
    out = F.render("{x}", {})
    assert out.kind is ValueKind.ERROR
    assert str(out.payload) == (
        "render: template field 'x' has no value; the mapping is empty. Add 'x' to the "
        "mapping, or write literal braces as '{{' and '}}'"
    )
    out = F.render("{x}", {"a": 1, "b": 2})
    assert "the mapping has keys: a, b" in str(out.payload)


def test_render_errors_for_bad_templates_and_mappings():
    assert "positional field" in str(F.render("{}", {"a": 1}).payload)
    assert "Single '}'" in str(F.render("oops }", {}).payload)
    assert "must be a dict of fields" in str(F.render("{a}", ["a"]).payload)
    assert "must be TEXT" in str(F.render(3, {}).payload)
    assert "cannot be looked up" in str(F.render("{a[zz]}", {"a": {}}).payload)


def test_format_is_positional_and_keyword_str_format():
    assert F.format("{} of {n}", "one", n=3).payload == "one of 3"
    assert F.format("{1}-{0}", "a", "b").payload == "b-a"
    assert "1 positional value(s)" in str(F.format("{} {}", "a").payload)
    assert "no keyword values were given" in str(F.format("{x}").payload)


def test_concat_joins_parts_as_text():
    assert F.concat("a", 1, 2.5, {"k": None}, sep="|").payload == 'a|1|2.5|{"k": null}'
    assert F.concat().payload == ""
    assert F.concat("x", Unprintable()).kind is ValueKind.ERROR


def test_strip_lower_upper():
    padded, dashed = "  hi \n", "--hi--"
    assert F.strip(padded).payload == "hi"
    assert F.strip(dashed, chars="-").payload == "hi"
    assert F.lower("HeLLo").payload == "hello"
    assert F.upper("HeLLo").payload == "HELLO"
    assert F.upper(3).payload == "3"
    assert F.lower(b"ABC").payload == "abc"
    assert F.upper(b"\xff").kind is ValueKind.ERROR
    assert F.strip(Value(ValueKind.RESPONSE, {"text": " r "})).payload == "r"


def test_text_ops_refuse_unrendered_fstrings():
    out = F.upper(Value(ValueKind.FSTRING, ("a", FormatField("n1"))))
    assert "never filled in" in str(out.payload)
    assert F.upper(Value(ValueKind.FSTRING, ("a", "b"))).payload == "AB"


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("3", ValueKind.INT, Value(ValueKind.INT, 3)),
        (" -3.0 ", "int", Value(ValueKind.INT, -3)),
        ("3.5", "float", Value(ValueKind.FLOAT, 3.5)),
        ("3", ValueKind.FLOAT, Value(ValueKind.FLOAT, 3.0)),
        (3, "FLOAT", Value(ValueKind.FLOAT, 3.0)),
        (3.0, ValueKind.INT, Value(ValueKind.INT, 3)),
        (3, ValueKind.TEXT, Value(ValueKind.TEXT, "3")),
        (True, ValueKind.TEXT, Value(ValueKind.TEXT, "True")),
        ({"a": [1]}, ValueKind.TEXT, Value(ValueKind.TEXT, '{"a": [1]}')),
        ('{"a": 1}', ValueKind.STRUCTURED, valueify({"a": 1})),
        ("```json\n[1]\n```", ValueKind.STRUCTURED, valueify([1])),
        ("hi", ValueKind.BINARY, Value(ValueKind.BINARY, b"hi")),
        (b"hi", ValueKind.TEXT, Value(ValueKind.TEXT, "hi")),
        ({"a": 1}, ValueKind.OTHER, Value(ValueKind.OTHER, {"a": 1})),
    ],
)
def test_coerce_lossless_rules(value, kind, expected):
    assert F.coerce(value, kind) == expected


def test_coerce_same_kind_returns_the_value_itself():
    v = Value(ValueKind.TEXT, "x", ref="n1")
    assert F.coerce(v, ValueKind.TEXT) is v


def test_coerce_from_a_response():
    response = Value(ValueKind.RESPONSE, {"text": '{"a": 1}', "structured": None})
    assert F.coerce(response, "text").payload == '{"a": 1}'
    assert F.coerce(response, "structured") == valueify({"a": 1})
    parsed = Value(ValueKind.RESPONSE, {"text": "ignored", "structured": {"b": 2}})
    assert F.coerce(parsed, "structured") == valueify({"b": 2})


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (3.5, ValueKind.INT, "3.5 is not a whole number"),
        ("abc", ValueKind.INT, "TEXT 'abc', which is not a number"),
        (True, ValueKind.INT, "no lossless conversion from OTHER to INT"),
        ({"a": 1}, ValueKind.FLOAT, "no lossless conversion from STRUCTURED to FLOAT"),
        ("3", ValueKind.STRUCTURED, "holds int 3, not an object or an array"),
        ("not json", ValueKind.STRUCTURED, "the text is not JSON"),
        (3, ValueKind.ERROR, "no lossless conversion from INT to ERROR"),
        (3, "decimal", "'decimal' is not a ValueKind; use one of TEXT, FSTRING"),
        ({"a": {1, 2}}, ValueKind.TEXT, "not JSON serializable"),
    ],
)
def test_coerce_refusals_name_both_kinds(value, kind, message):
    out = F.coerce(value, kind)
    assert out.kind is ValueKind.ERROR
    assert message in str(out.payload)
    assert out.meta["op"] == "coerce"


def test_coerce_passes_errors_through_as_new_errors():
    out = F.coerce(ERR_A, ValueKind.TEXT)
    assert out.payload is ERR_A.payload and out.meta["op"] == "coerce"
