"""Simulator settings: validation messages, dict forms of rules and faults, config files."""

import pytest

import plait.simulator as sim
from plait.errors import ConfigError
from plait.simulator import FaultSpec, ReplyRule, RequestMatch, SimulatorSettings


def test_public_names_are_sorted_and_importable():
    assert sim.__all__ == sorted(sim.__all__)
    assert all(hasattr(sim, name) for name in sim.__all__)


def test_defaults_are_instant_and_scriptless():
    settings = SimulatorSettings()
    assert (settings.latency, settings.jitter, settings.ttft) == (0.0, 0.0, 0.0)
    assert settings.tokens_per_second is None
    assert settings.max_rps is None
    assert (settings.replies, settings.faults, settings.seed) == ((), (), 0)


def test_dict_rules_and_faults_become_typed_records():
    settings = SimulatorSettings(
        replies=[{"match": {"system": "Summarize"}, "reply": "short"}, "catch-all"],
        faults=[{"kind": "server_error", "rate": 0.2, "status": 503, "attempts": "first"}],
    )
    assert settings.replies == (
        ReplyRule(match=RequestMatch(system="Summarize"), reply="short"),
        ReplyRule(reply="catch-all"),
    )
    assert settings.faults == (
        FaultSpec(kind="server_error", rate=0.2, status=503, attempts="first"),
    )


def test_fault_kind_defaults_are_filled_in():
    faults = SimulatorSettings(
        faults=[
            {"kind": "rate_limit"},
            {"kind": "server_error"},
            {"kind": "timeout"},
            {"kind": "cut_stream"},
        ]
    ).faults
    assert [f.retry_after for f in faults] == [1.0, None, None, None]
    assert [f.status for f in faults] == [None, 500, None, None]
    assert [f.hang for f in faults] == [None, None, 30.0, None]
    assert [f.chunks for f in faults] == [None, None, None, 2]
    assert [f.rate for f in faults] == [1.0, 1.0, 1.0, 1.0]


def test_max_sightings_reads_attempts():
    assert FaultSpec("timeout", attempts="first").max_sightings == 1
    assert FaultSpec("timeout", attempts=3).max_sightings == 3
    assert FaultSpec("timeout").max_sightings is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latency": -1}, "SimulatorSettings.latency must be a number >= 0, got -1"),
        ({"jitter": "2"}, "SimulatorSettings.jitter must be a number >= 0, got '2'"),
        ({"tokens_per_second": 0}, "SimulatorSettings.tokens_per_second must be a number > 0"),
        ({"max_rps": -5}, "SimulatorSettings.max_rps must be a number > 0, got -5"),
        ({"seed": 1.5}, "SimulatorSettings.seed must be an integer, got 1.5"),
        ({"replies": "hi"}, "SimulatorSettings.replies must be a list of ReplyRule or dicts"),
        ({"replies": [42]}, "SimulatorSettings.replies[0] must be a ReplyRule or a dict, got 42"),
        ({"faults": [{"kind": "explode"}]}, "fault.kind must be one of ('rate_limit'"),
        ({"faults": [{"kind": "timeout", "rate": 2}]}, "a probability between 0 and 1, got 2"),
        ({"faults": [{"kind": "timeout", "attempts": "some"}]}, "'first', 'all' or an integer"),
        ({"faults": [{"kind": "timeout", "after": -1}]}, "after must be an integer >= 0, got -1"),
        ({"faults": [{"kind": "timeout", "status": 503}]}, "'status' applies only to kind"),
        ({"faults": [{"kind": "server_error", "status": 404}]}, "status from 500 to 599"),
        ({"faults": [{"kind": "rate_limit", "wait": 1}]}, "unknown keys ['wait']; allowed keys"),
        (
            {"faults": [{"kind": "rate_limit", "send_retry_after": "no"}]},
            "send_retry_after must be true or false, got 'no'",
        ),
        (
            {"faults": [{"kind": "timeout", "send_retry_after": False}]},
            "'send_retry_after' applies only to kind 'rate_limit'",
        ),
        ({"rate_limit_headers": 1}, "rate_limit_headers must be true or false, got 1"),
    ],
)
def test_bad_settings_name_field_value_and_what_is_allowed(kwargs, message):
    with pytest.raises(ConfigError) as caught:
        SimulatorSettings(**kwargs)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"reply": "a", "json": {"b": 1}}, "exactly one of 'reply', 'json', 'tool_call'"),
        ({"match": {"user": "hi"}}, "exactly one of 'reply', 'json', 'tool_call'; got none"),
        ({"match": {"user": "regex:(unclosed"}, "reply": "x"}, "not a valid regular expression"),
        ({"match": {"colour": "red"}, "reply": "x"}, "rule.match has unknown keys ['colour']"),
        ({"match": {"tools": "yes"}, "reply": "x"}, "match.tools must be true, false or absent"),
        ({"reply": "Hi {name}"}, "placeholder {name}, which this rule does not define"),
        ({"match": {"user": "regex:(a)"}, "reply": "{2}"}, "placeholder {2}"),
        ({"reply": "{oops"}, "write '{{' and '}}' for literal braces"),
        ({"reply": "x", "finish_reason": "done"}, "finish_reason must be one of"),
        ({"tool_call": {"fn": "search"}}, "optional keys 'name', 'arguments', 'id'"),
    ],
)
def test_bad_rules_are_refused_at_construction(rule, message):
    with pytest.raises(ConfigError) as caught:
        SimulatorSettings(replies=[rule])
    assert message in str(caught.value)


def test_templates_accept_defined_placeholders_and_escaped_braces():
    rule = ReplyRule(
        match={"user": "regex:about (?P<topic>\\w+)"},
        reply="{{literal}} {topic} {0} {1} {user} {system} {model} {digest}",
    )
    assert rule.reply.startswith("{{literal}}")


def test_from_mapping_names_unknown_keys():
    with pytest.raises(ConfigError) as caught:
        SimulatorSettings.from_mapping({"latency": 0.1, "latencey": 0.2})
    assert "unknown keys ['latencey']" in str(caught.value)
    assert "'latency'" in str(caught.value)


def test_settings_load_from_toml_and_json(tmp_path):
    toml = tmp_path / "sim.toml"
    toml.write_text(
        "latency = 0.25\nseed = 7\n"
        '[[replies]]\nmatch = { user = "regex:^ping" }\nreply = "pong"\n'
        '[[faults]]\nkind = "rate_limit"\nrate = 0.5\nretry_after = 2\n'
    )
    settings = SimulatorSettings.from_file(toml)
    assert (settings.latency, settings.seed) == (0.25, 7)
    assert settings.replies == (ReplyRule(match=RequestMatch(user="regex:^ping"), reply="pong"),)
    assert settings.faults == (FaultSpec("rate_limit", rate=0.5, retry_after=2.0),)
    json_file = tmp_path / "sim.json"
    json_file.write_text('{"jitter": 0.5, "faults": [{"kind": "malformed", "rate": 0.1}]}')
    assert SimulatorSettings.from_file(json_file).faults == (FaultSpec("malformed", rate=0.1),)


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"must end in \.toml or \.json, got '\.yaml'"):
        SimulatorSettings.from_file(tmp_path / "sim.yaml")
    with pytest.raises(ConfigError, match="cannot read simulator config"):
        SimulatorSettings.from_file(tmp_path / "missing.toml")
