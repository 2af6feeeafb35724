import pytest

from plait import ConfigError, Parameter, ValueKind


def test_learnable_parameter_requires_a_description():
    with pytest.raises(ConfigError, match="no description.*requires_grad=False"):
        Parameter("Be concise.")
    with pytest.raises(ConfigError, match="no description"):
        Parameter("Be concise.", description="   ")


def test_frozen_parameter_needs_no_description_but_cannot_become_learnable_without_one():
    p = Parameter(0.2, requires_grad=False)
    assert p.requires_grad is False
    with pytest.raises(ConfigError, match="no description"):
        p.requires_grad_(True)


def test_apply_update_replaces_value_and_bumps_version():
    p = Parameter("a", description="d")
    p.apply_update("b")
    p.apply_update("c")
    assert (p.value, p.version) == ("c", 2)


def test_apply_update_refuses_a_different_type():
    p = Parameter("text", description="d")
    with pytest.raises(ConfigError, match="holds a str; got a int"):
        p.apply_update(3)
    assert p.value == "text" and p.version == 0


def test_feedback_accumulates_and_clears():
    p = Parameter("a", description="d")
    p.accumulate_feedback("too long")
    p.accumulate_feedback("missing numbers")
    assert p.feedback == ["too long", "missing numbers"]
    p.zero_feedback()
    assert p.feedback == []


def test_lift_gives_param_ref_value():
    p = Parameter("Be brief.", description="style")
    p.name = "analyzer.system_prompt"
    v = p.lift()
    assert (v.kind, v.payload, v.ref) == (
        ValueKind.TEXT,
        "Be brief.",
        "param:analyzer.system_prompt",
    )
    assert p.lift("other").ref == "param:other"


def test_outside_a_trace_parameter_formats_as_its_value():
    p = Parameter("Be brief.", description="style")
    assert f"[{p}]" == "[Be brief.]"
    assert f"{p:>10}" == " Be brief."
    assert p + "!" == "Be brief.!"
    assert "> " + p == "> Be brief."
    assert str(p) == "Be brief."


def test_repr_shows_name_and_short_value():
    p = Parameter("x" * 100, description="d")
    p.name = "prompt"
    r = repr(p)
    assert r.startswith("Parameter(name='prompt', value='xxx") and "..." in r and len(r) < 110
