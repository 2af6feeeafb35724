from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plait.resources
from plait.errors import ConfigError
from plait.resources import EndpointConfig, ResourceConfig, Secret

KEY = "sk-test-DO-NOT-LEAK-1234"


def test_public_names():
    assert plait.resources.__all__ == [
        "EndpointConfig",
        "RateLimiter",
        "ResourceConfig",
        "RetryPolicy",
        "Secret",
    ]


def test_dict_form_from_the_seed():
    resources = ResourceConfig(
        {
            "fast": {"model": "gpt-4o-mini", "max_concurrent": 20},
            "smart": {"model": "gpt-4o", "max_concurrent": 5},
        }
    )
    assert resources.aliases == ("fast", "smart")
    assert len(resources) == 2
    assert list(resources) == ["fast", "smart"]
    assert "fast" in resources and "slow" not in resources
    fast = resources["fast"]
    assert fast.model == "gpt-4o-mini"
    assert fast.max_concurrent == 20
    assert fast.provider == "openai"
    assert fast.base_url == "https://api.openai.com/v1"
    assert fast.api_key_env == "OPENAI_API_KEY"
    assert fast.timeout == 60.0
    assert fast.max_retries == 3
    assert fast.rpm is None and fast.tpm is None
    assert resources.max_concurrent is None


def test_typed_form_and_mixed_values():
    smart = EndpointConfig(provider="anthropic", model="claude-sonnet-4", rpm=50, tpm=40_000)
    resources = ResourceConfig({"smart": smart, "fast": {"model": "gpt-4o-mini"}}, max_concurrent=8)
    assert resources["smart"] is smart
    assert smart.base_url == "https://api.anthropic.com"
    assert smart.api_key_env == "ANTHROPIC_API_KEY"
    assert smart.rpm == 50.0 and isinstance(smart.rpm, float)
    assert resources.max_concurrent == 8


def test_simulated_defaults_and_convenience_constructor():
    sim = EndpointConfig(provider="simulated", latency=0.2, replies=["hello"])
    assert sim.model == "sim-1"
    assert sim.base_url is None
    assert sim.api_key_env is None
    assert sim.replies == ("hello",)
    assert sim.resolve_api_key() is None
    resources = ResourceConfig.simulated("fast", "smart", latency=0.1, seed=7)
    assert resources.aliases == ("fast", "smart")
    assert resources["smart"] == EndpointConfig(provider="simulated", latency=0.1, seed=7)


def test_simulated_constructor_needs_an_alias_and_owns_the_provider():
    with pytest.raises(ConfigError, match="at least one alias"):
        ResourceConfig.simulated()
    with pytest.raises(ConfigError, match="provider='openai'"):
        ResourceConfig.simulated("fast", provider="openai")


def test_from_toml(tmp_path: Path):
    path = tmp_path / "resources.toml"
    path.write_text(
        "max_concurrent = 12\n"
        "[endpoints.fast]\n"
        'model = "gpt-4o-mini"\n'
        "max_concurrent = 20\n"
        "rpm = 500\n"
        'cache = ".plait-cache"\n'
        "[endpoints.local]\n"
        'model = "llama3"\n'
        'base_url = "http://localhost:11434/v1/"\n'
        "[endpoints.sim]\n"
        'provider = "simulated"\n'
        "latency = 0.05\n"
    )
    resources = ResourceConfig.from_toml(path)
    assert resources.aliases == ("fast", "local", "sim")
    assert resources.max_concurrent == 12
    assert resources["fast"].rpm == 500.0
    assert resources["fast"].cache == Path(".plait-cache")
    assert resources["local"].base_url == "http://localhost:11434/v1"
    assert resources["sim"].latency == 0.05


def test_toml_errors_name_the_file_and_alias(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text('[endpoints.fast]\nmodel = "gpt-4o-mini"\nmax_concurrent = 0\n')
    with pytest.raises(ConfigError) as caught:
        ResourceConfig.from_toml(path)
    message = str(caught.value)
    assert "bad.toml" in message
    assert "endpoint 'fast'" in message
    assert "max_concurrent=0: must be an integer >= 1" in message


def test_toml_unreadable_or_malformed(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read resource config"):
        ResourceConfig.from_toml(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[endpoints.fast\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        ResourceConfig.from_toml(broken)


def test_from_dict_top_level_keys():
    with pytest.raises(ConfigError, match="no 'endpoints' table"):
        ResourceConfig.from_dict({"max_concurrent": 3})
    with pytest.raises(ConfigError, match=r"'endpionts'.*did you mean 'endpoints'"):
        ResourceConfig.from_dict({"endpionts": {}})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"model": "m", "max_concurrent": 0}, "max_concurrent=0: must be an integer >= 1"),
        ({"model": "m", "max_concurrent": 2.5}, "max_concurrent=2.5: must be an integer >= 1"),
        ({"model": "m", "rpm": -5}, "rpm=-5: must be a positive number of requests per minute"),
        ({"model": "m", "tpm": 0}, "tpm=0: must be a positive number of tokens per minute"),
        ({"model": "m", "timeout": 0}, "timeout=0: must be a positive number of seconds"),
        ({"model": "m", "max_retries": -1}, "max_retries=-1: must be an integer >= 0"),
        ({"model": "m", "max_retries": True}, "max_retries=True: must be an integer >= 0"),
        ({"model": "m", "input_cost_per_million": -1}, "input_cost_per_million=-1: must be"),
        ({"model": "m", "cache": 3}, "cache=3: must be True, False, or a cache directory path"),
        ({"model": "m", "base_url": "localhost:8000"}, "base_url='localhost:8000': must be an"),
        ({"model": ""}, "model='': a model name is required for provider 'openai'"),
        ({"model": 4}, "model=4: must be a model name string"),
        ({"provider": "openia", "model": "m"}, "(did you mean 'openai'?)"),
        ({"model": "m", "latency": 0.5}, "latency=0.5: a simulator setting, but provider is"),
        ({"provider": "simulated", "seed": "x"}, "seed='x': must be an integer"),
        ({"provider": "simulated", "replies": "hi"}, "replies='hi': must be a list or tuple"),
        ({"provider": "simulated", "base_url": "http://x"}, "runs in-process"),
    ],
)
def test_each_validation_error_names_alias_field_value_and_allowed(fields, expected):
    with pytest.raises(ConfigError) as caught:
        ResourceConfig({"fast": fields})
    message = str(caught.value)
    assert message.startswith("endpoint 'fast' has 1 problem:")
    assert expected in message


def test_all_problems_of_an_endpoint_are_reported_together():
    with pytest.raises(ConfigError) as caught:
        ResourceConfig(
            {"fast": {"model": "gpt-4o-mini", "max_concurent": 20, "rpm": 0, "timeout": -1}}
        )
    assert str(caught.value) == (
        "endpoint 'fast' has 3 problems:\n"
        "  - 'max_concurent' is not an endpoint field; did you mean 'max_concurrent'?\n"
        "  - rpm=0: must be a positive number of requests per minute, or None\n"
        "  - timeout=-1: must be a positive number of seconds"
    )


def test_problems_in_several_endpoints_and_the_global_cap_are_reported_together():
    with pytest.raises(ConfigError) as caught:
        ResourceConfig({"a": {"model": "m", "rpm": 0}, "b": 3, "": {}}, max_concurrent=0)
    message = str(caught.value)
    assert "endpoint 'a' has 1 problem" in message
    assert "endpoint 'b': expected a dict of endpoint fields, got int" in message
    assert "endpoint alias '': must be a non-empty string" in message
    assert "max_concurrent=0: the global cap must be an integer >= 1" in message


def test_unknown_field_without_a_close_match_lists_the_allowed_fields():
    with pytest.raises(ConfigError, match=r"'zzz' is not an endpoint field; allowed: provider, "):
        EndpointConfig.from_dict({"model": "m", "zzz": 1})


def test_typed_form_errors_have_no_alias():
    with pytest.raises(ConfigError, match=r"^EndpointConfig has 1 problem:\n  - rpm=0"):
        EndpointConfig(model="m", rpm=0)


def test_unknown_alias_lists_known_aliases():
    resources = ResourceConfig({"fast": {"model": "a"}, "smart": {"model": "b"}})
    with pytest.raises(ConfigError) as caught:
        resources["fats"]
    assert str(caught.value) == (
        "no endpoint named 'fats' (did you mean 'fast'?); known aliases: 'fast', 'smart'. "
        "Add it to the ResourceConfig, or use a known alias."
    )
    assert resources.get("fats") is None


def test_api_key_never_shows():
    endpoint = EndpointConfig(model="gpt-4o-mini", api_key=KEY)
    resources = ResourceConfig({"fast": endpoint})
    assert isinstance(endpoint.api_key, Secret)
    assert repr(endpoint.api_key) == "'***'"
    for text in (
        repr(endpoint),
        str(endpoint),
        repr(resources),
        str(resources.to_dict()),
        repr(dataclasses.asdict(endpoint)),
        f"{endpoint.api_key}",
    ):
        assert KEY not in text
    assert "api_key='***'" in repr(endpoint)
    assert "api_key" not in resources.to_dict()["endpoints"]["fast"]


def test_api_key_never_shows_in_errors():
    with pytest.raises(ConfigError) as caught:
        ResourceConfig({"fast": {"model": "m", "api_key": KEY, "rpm": -1}})
    assert KEY not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        EndpointConfig(model="m", api_key=123456789)
    assert "123456789" not in str(caught.value)
    assert "api_key: must be a non-empty string or None (got int)" in str(caught.value)


def test_resolve_api_key_prefers_the_explicit_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert EndpointConfig(model="m", api_key=KEY).resolve_api_key() == KEY
    assert EndpointConfig(model="m").resolve_api_key() == "from-env"


def test_resolve_api_key_reads_the_env_at_call_time(monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    endpoint = EndpointConfig(provider="anthropic", model="claude", api_key_env="MY_KEY")
    with pytest.raises(ConfigError) as caught:
        endpoint.resolve_api_key(alias="smart")
    assert str(caught.value) == (
        "endpoint 'smart' (https://api.anthropic.com) needs an API key, but the environment "
        "variable MY_KEY is not set; set it, or pass api_key=... in the endpoint config"
    )
    monkeypatch.setenv("MY_KEY", "later")
    assert endpoint.resolve_api_key() == "later"


def test_missing_default_key_names_the_env_var(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        EndpointConfig(model="gpt-4o-mini").resolve_api_key()


def test_custom_server_needs_no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    local = EndpointConfig(model="llama3", base_url="http://localhost:11434/v1")
    assert local.resolve_api_key() is None


def test_cost_uses_prices_per_million():
    endpoint = EndpointConfig(model="m", input_cost_per_million=0.15, output_cost_per_million=0.60)
    assert endpoint.cost(1_000_000, 0) == pytest.approx(0.15)
    assert endpoint.cost(2000, 500) == pytest.approx(0.0006)
    assert EndpointConfig(model="m").cost(10, 10) == 0.0


def test_with_overrides_changes_one_endpoint():
    resources = ResourceConfig({"fast": {"model": "a"}, "smart": {"model": "b"}})
    changed = resources.with_overrides("fast", rpm=60, max_concurrent=2)
    assert changed["fast"].rpm == 60.0 and changed["fast"].max_concurrent == 2
    assert changed["smart"] is resources["smart"]
    assert resources["fast"].rpm is None
    with pytest.raises(ConfigError, match="did you mean 'max_retries'"):
        resources.with_overrides("fast", max_retrys=1)
    with pytest.raises(ConfigError, match="no endpoint named 'slow'"):
        resources.with_overrides("slow", rpm=1)


def test_with_overrides_switches_simulated_to_real_in_one_call():
    resources = ResourceConfig.simulated("fast", latency=0.3, seed=4)
    real = resources.with_overrides("fast", provider="openai", model="gpt-4o-mini")
    assert real["fast"] == EndpointConfig(model="gpt-4o-mini")
    back = real.with_overrides("fast", provider="simulated")
    assert back["fast"].base_url is None
    assert back["fast"].model == "gpt-4o-mini"


def test_to_dict_round_trip_and_repr():
    resources = ResourceConfig(
        {
            "fast": {"model": "gpt-4o-mini", "max_concurrent": 20, "cache": "/tmp/c"},
            "sim": {"provider": "simulated", "faults": [{"kind": "rate_limit"}]},
        },
        max_concurrent=4,
    )
    data = resources.to_dict()
    assert data["max_concurrent"] == 4
    assert data["endpoints"]["fast"]["cache"] == "/tmp/c"
    assert "latency" not in data["endpoints"]["fast"]
    assert data["endpoints"]["sim"]["faults"] == ({"kind": "rate_limit"},)
    assert ResourceConfig.from_dict(data) == resources
    assert repr(resources) == (
        "ResourceConfig({'fast': EndpointConfig(provider='openai', model='gpt-4o-mini', "
        "max_concurrent=20, cache=PosixPath('/tmp/c')), 'sim': EndpointConfig("
        "provider='simulated', model='sim-1', faults=({'kind': 'rate_limit'},))}, max_concurrent=4)"
    )


_INVALID = {
    "max_concurrent": st.one_of(
        st.integers(max_value=0), st.floats(allow_nan=True), st.text(), st.booleans()
    ),
    "rpm": st.one_of(st.floats(max_value=0), st.just(float("nan")), st.text(min_size=1)),
    "tpm": st.one_of(st.integers(max_value=0), st.just(float("inf")), st.booleans()),
    "timeout": st.one_of(st.floats(max_value=0), st.none(), st.text()),
    "max_retries": st.one_of(st.integers(max_value=-1), st.floats(), st.booleans()),
    "input_cost_per_million": st.one_of(st.floats(max_value=-1e-9), st.text()),
    "output_cost_per_million": st.one_of(st.integers(max_value=-1), st.none()),
    "cache": st.one_of(st.integers(), st.none(), st.just("")),
    "base_url": st.one_of(st.integers(), st.text().filter(lambda s: not s.startswith("http"))),
    "api_key_env": st.one_of(st.just(""), st.integers()),
    "provider": st.text().filter(lambda s: s not in ("openai", "anthropic", "simulated")),
}
_INVALID_SIMULATED = {
    "latency": st.one_of(st.floats(max_value=-1e-9), st.text()),
    "jitter": st.one_of(st.integers(max_value=-1), st.none()),
    "ttft": st.just(float("nan")),
    "tokens_per_second": st.one_of(st.floats(max_value=0), st.text()),
    "replies": st.one_of(st.integers(), st.text(), st.dictionaries(st.text(), st.text())),
    "faults": st.one_of(st.integers(), st.none()),
    "seed": st.one_of(st.floats(), st.text(), st.booleans()),
}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_invalid_field_value_raises_naming_the_field(data):
    simulated = data.draw(st.booleans())
    table = _INVALID_SIMULATED if simulated else _INVALID
    name = data.draw(st.sampled_from(sorted(table)))
    value = data.draw(table[name])
    fields = {"provider": "simulated"} if simulated else {"model": "m"}
    with pytest.raises(ConfigError) as caught:
        ResourceConfig({"ep": fields | {name: value}})
    message = str(caught.value)
    assert message.startswith("endpoint 'ep' has 1 problem:")
    assert f"  - {name}=" in message


_NUMBER = st.floats(min_value=0, max_value=1e6, allow_nan=False)
_POSITIVE = st.floats(min_value=1e-3, max_value=1e6)


@st.composite
def _endpoints(draw):
    provider = draw(st.sampled_from(["openai", "anthropic", "simulated"]))
    fields = {
        "provider": provider,
        "max_concurrent": draw(st.integers(1, 1000)),
        "rpm": draw(st.none() | _POSITIVE),
        "tpm": draw(st.none() | st.integers(1, 10**7)),
        "timeout": draw(_POSITIVE),
        "max_retries": draw(st.integers(0, 10)),
        "input_cost_per_million": draw(_NUMBER),
        "output_cost_per_million": draw(_NUMBER),
        "cache": draw(st.booleans() | st.just("cache-dir")),
    }
    if provider == "simulated":
        fields |= {
            "latency": draw(_NUMBER),
            "jitter": draw(_NUMBER),
            "tokens_per_second": draw(st.none() | _POSITIVE),
            # Valid reply templates: braces would be str.format fields (checked at build time).
            "replies": draw(
                st.lists(st.text(st.characters(exclude_characters="{}"), max_size=5), max_size=3)
            ),
            "seed": draw(st.integers()),
        }
    else:
        fields["model"] = draw(st.text(min_size=1).filter(str.strip))
        fields["base_url"] = draw(st.none() | st.just("http://127.0.0.1:8000/v1"))
    return fields


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), _endpoints()))
def test_valid_configs_round_trip_through_to_dict(endpoints):
    resources = ResourceConfig(endpoints)
    assert ResourceConfig.from_dict(resources.to_dict()) == resources
    for alias in resources:
        endpoint = resources[alias]
        assert EndpointConfig.from_dict(endpoint.to_dict(), alias=alias) == endpoint
