from dataclasses import dataclass

import pytest

from plait import ConfigError, LLMInference, Parameter


def test_llm_inference_keeps_its_configuration():
    llm = LLMInference("fast", system_prompt="Summarize.", temperature=0.2, max_tokens=50, seed=7)
    assert (llm.alias, llm.system_text(), llm.temperature, llm.max_tokens) == (
        "fast",
        "Summarize.",
        0.2,
        50,
    )
    assert llm.request_options == {"seed": 7}
    assert list(llm.named_parameters()) == []


def test_parameter_system_prompt_is_registered_and_read_at_call_time():
    prompt = Parameter("v1", description="analysis style")
    llm = LLMInference("smart", system_prompt=prompt)
    assert [n for n, _ in llm.named_parameters()] == ["system_prompt"]
    prompt.apply_update("v2")
    assert llm.system_text() == "v2"
    assert llm.build_request("hi", model="m").messages[0] == {"role": "system", "content": "v2"}


def test_build_request_shapes_messages_and_options():
    llm = LLMInference("fast", system_prompt="S", temperature=0.0, stream=True, top_p=0.5)
    req = llm.build_request("hello", model="gpt-x")
    assert req.model == "gpt-x" and req.stream is True and req.temperature == 0.0
    assert req.messages == (
        {"role": "system", "content": "S"},
        {"role": "user", "content": "hello"},
    )
    assert req.options == {"top_p": 0.5}
    chat = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert LLMInference("x").build_request(chat, model="m").messages == tuple(chat)
    assert (
        LLMInference("x")
        .build_request("q", model="m", system_prompt="override")
        .messages[0]["content"]
        == "override"
    )


def test_response_format_dataclass_becomes_a_schema():
    @dataclass
    class Verdict:
        label: str
        score: float

    llm = LLMInference("fast", response_format=Verdict)
    assert llm.response_schema["type"] == "object"
    assert set(llm.response_schema["required"]) == {"label", "score"}
    assert llm.build_request("x", model="m").response_format == llm.response_schema


def test_tools_are_normalized_to_openai_form():
    llm = LLMInference(
        "fast", tools=[{"name": "lookup", "parameters": {"type": "object"}, "description": "Find"}]
    )
    assert llm.tools == (
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object"}, "description": "Find"},
        },
    )
    with pytest.raises(ConfigError, match=r"tools\[0\] must be an OpenAI-style function tool"):
        LLMInference("fast", tools=["lookup"])


def test_bad_arguments_are_reported_together():
    with pytest.raises(ConfigError) as err:
        LLMInference("", temperature=5, max_tokens=0, model="x")
    msg = str(err.value)
    assert "alias must be a non-empty string" in msg
    assert "temperature must be a number from 0 to 2; got 5" in msg
    assert "max_tokens must be a positive int; got 0" in msg
    assert "model cannot be passed as extra request options" in msg


def test_repr_is_informative():
    r = repr(
        LLMInference(
            "fast",
            system_prompt="Summarize the input, then list the three main risks.",
            temperature=0.1,
        )
    )
    assert (
        r
        == "LLMInference('fast', system_prompt='Summarize the input, then list the three...', temperature=0.1)"
    )
