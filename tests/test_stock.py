"""Stock modules (`plait.stock`) over loopback HTTP: the request log shows the calls each makes.

The agent: model → tools (all at once) → model ... within max_steps, tool
errors fed back as tool results. The refine loop: stops at the first pass.
The map: one call per element of a model-produced list, overlapping up to the cap.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from _exec_support import http_resources
from _sim_support import sim_server_thread

import plait
from plait import (
    CallError,
    ConfigError,
    ExecutionError,
    LLMInference,
    Module,
    ResourceConfig,
    execute,
    run,
)
from plait.stock import (
    LIST_SCHEMA,
    VERDICT_SCHEMA,
    LoopLimitError,
    MapList,
    Refine,
    ToolAgent,
    tool_schema,
)


@plait.op
async def weather(city: str, unit: Literal["C", "F"] = "C") -> str:
    """Today's weather in a city.

    Args:
        city: the city's name, in English
        unit: temperature unit
    """
    if city == "Atlantis":
        raise ValueError("no weather station in Atlantis")
    return f"sunny in {city}, 21 {unit}"


@plait.op
def population(city: str) -> dict:
    """How many people live in a city."""
    return {"city": city, "people": 2_100_000}


def test_tool_schema_reads_the_signature_hints_and_docstring():
    assert tool_schema(weather) == {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Today's weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "the city's name, in English"},
                    "unit": {
                        "type": "string",
                        "enum": ["C", "F"],
                        "description": "temperature unit",
                    },
                },
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }


def roles(request):
    return [m["role"] for m in request.messages]


async def test_the_agent_runs_the_tools_asked_for_at_once_and_answers():
    both_started = asyncio.Event()
    started = []

    @plait.op
    async def forecast(city: str) -> str:
        """Tomorrow's forecast."""
        started.append(city)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 5)  # times out unless the two overlap
        return f"rain in {city}"

    calls = [
        {"name": "forecast", "arguments": {"city": "Paris"}},
        {"name": "forecast", "arguments": {"city": "Oslo"}},
    ]
    rules = [
        {"match": {"tools": True, "tool_result": False}, "tool_call": calls},
        {"match": {"tool_result": True}, "reply": "Rain in both."},
    ]
    with sim_server_thread(replies=rules) as server:
        agent = ToolAgent("smart", tools=[forecast, weather], system_prompt="Use the tools.")
        result = await execute(
            agent, "Paris or Oslo?", resources=http_resources(server.url, "smart")
        )
        first, second = server.model.requests
    assert result.ok, result.failures
    assert result.output == "Rain in both."
    assert roles(first) == ["system", "user"]
    assert [t["function"]["name"] for t in first.body["tools"]] == ["forecast", "weather"]
    assert roles(second) == ["system", "user", "assistant", "tool", "tool"]
    asked = second.messages[2]["tool_calls"]
    assert [c["function"] for c in asked] == [
        {"name": "forecast", "arguments": '{"city": "Paris"}'},
        {"name": "forecast", "arguments": '{"city": "Oslo"}'},
    ]
    assert [(m["tool_call_id"], m["content"]) for m in second.messages[3:]] == [
        (asked[0]["id"], "rain in Paris"),
        (asked[1]["id"], "rain in Oslo"),
    ]
    assert list(result.nodes) == ["llm", "forecast", "forecast_1", "llm_1"]
    nodes = result.graph.nodes
    assert nodes["forecast"].control == nodes["forecast_1"].control == ("llm",)
    assert set(nodes["llm_1"].dependencies) == {"llm", "forecast", "forecast_1"}
    assert [nodes[n].call_key for n in result.nodes] == [
        "/llm#0",
        "/forecast#0",
        "/forecast#1",
        "/llm#1",
    ]


async def test_tool_errors_go_back_to_the_model_as_tool_results():
    calls = [
        {"name": "weather", "arguments": {"city": "Atlantis"}},
        {"name": "population", "arguments": {"city": "Lima"}},
        {"name": "stocks", "arguments": {"symbol": "X"}},
        {"name": "weather", "arguments": {"town": "Lima"}},
    ]
    rules = [
        {"match": {"tools": True, "tool_result": False}, "tool_call": calls},
        {"match": {"tool_result": True}, "reply": "Sorry, partly."},
    ]
    with sim_server_thread(replies=rules) as server:
        agent = ToolAgent("smart", tools=[weather, population])
        result = await execute(agent, "Tell me", resources=http_resources(server.url, "smart"))
        requests = server.model.requests
    assert result.status == "done" and result.output == "Sorry, partly."
    assert len(requests) == 2
    assert roles(requests[1]) == ["user", "assistant", "tool", "tool", "tool", "tool"]
    assert [m["content"] for m in requests[1].messages[2:]] == [
        "Error: ValueError: no weather station in Atlantis",
        '{"city": "Lima", "people": 2100000}',
        "Error: there is no tool 'stocks'; the tools are weather, population",
        "Error: bad arguments for weather: missing a required argument: 'city'",
    ]
    # Only the tools that could be called became nodes; the failed one is recorded as failed.
    assert list(result.nodes) == ["llm", "weather", "population", "llm_1"]
    assert result.nodes["weather"].status == "failed"


async def test_the_agent_stops_at_max_steps_with_a_loop_limit_error():
    rules = [
        {"match": {"tools": True}, "tool_call": {"name": "weather", "arguments": {"city": "Rome"}}}
    ]
    with sim_server_thread(replies=rules) as server:
        resources = http_resources(server.url, "smart")
        result = await execute(ToolAgent("smart", [weather], max_steps=3), "?", resources=resources)
        assert len(server.model.requests) == 3
        with pytest.raises(ExecutionError, match="LoopLimitError.*max_steps=3"):
            await run(ToolAgent("smart", [weather], max_steps=3), "?", resources=resources)
    assert result.status == "failed"
    # Three model calls; the tools the last one asked for were not run.
    assert list(result.nodes) == ["llm", "weather", "llm_1", "weather_1", "llm_2"]
    error = result.forward_error
    assert isinstance(error, LoopLimitError) and error.steps == 3
    assert error.last.meta["tool_calls"][0]["name"] == "weather"


async def test_the_agent_speaks_anthropic_through_the_client():
    rules = [
        {"match": {"tools": True, "tool_result": False}, "tool_call": {"name": "weather"}},
        {"match": {"tool_result": True}, "reply": "Done."},
    ]
    with sim_server_thread(replies=rules) as server:
        resources = ResourceConfig(
            {"smart": {"provider": "anthropic", "base_url": server.url, "model": "sim-claude"}}
        )
        answer = await run(ToolAgent("smart", [weather], max_tokens=200), "?", resources=resources)
        second = server.model.requests[1]
    assert answer == "Done."
    assert second.path == "/v1/messages"
    use = second.messages[1]["content"][-1]
    result = second.messages[2]["content"][0]
    assert use["type"] == "tool_use" and use["name"] == "weather"
    assert result["type"] == "tool_result" and result["tool_use_id"] == use["id"]
    assert result["content"].startswith("sunny in ")


class AgentWithFallback(Module):
    def __init__(self):
        super().__init__()
        self.agent = ToolAgent("smart", [weather], max_steps=2)
        self.backup = LLMInference("smart", system_prompt="Backup.")

    async def forward(self, history):
        try:
            return await self.agent(history)
        except CallError as exc:
            self.caught = exc
            return self.backup("?")


async def test_an_agent_inside_a_forward_takes_chat_history_and_fails_as_one_call():
    rules = [
        {"match": {"tools": True}, "tool_call": {"name": "weather", "arguments": {"city": "Rome"}}}
    ]
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Weather in Rome?"},
    ]
    with sim_server_thread(replies=rules) as server:
        module = AgentWithFallback()
        result = await execute(module, history, resources=http_resources(server.url, "smart"))
        requests = server.model.requests
    assert result.ok
    assert [r.messages[-1]["role"] for r in requests] == ["user", "tool", "user"]
    assert requests[0].messages == tuple(history)
    assert list(result.nodes) == ["agent", "agent.llm", "agent.weather", "agent.llm_1", "backup"]
    assert result.graph.nodes["agent.llm_1"].call_key == "/agent#0/agent.llm#1"
    assert module.caught.node_id == "agent" and isinstance(module.caught.cause, LoopLimitError)
    assert result.graph.nodes["backup"].control == ("agent",)


JUDGE = [
    {"match": {"system": "Judge", "user": "improved"}, "json": {"pass": True, "feedback": ""}},
    {"match": {"system": "Judge"}, "json": {"pass": False, "feedback": "too vague"}},
]


def refiner(max_rounds=3):
    return Refine(
        LLMInference("fast", system_prompt="Write a haiku."),
        LLMInference("smart", system_prompt="Judge it.", response_format=VERDICT_SCHEMA),
        max_rounds=max_rounds,
    )


async def test_refine_stops_at_the_first_pass():
    with sim_server_thread(replies=JUDGE) as server:
        resources = http_resources(server.url, "fast", "smart")
        result = await execute(refiner(), "about rain", resources=resources)
        requests = server.model.requests
    assert result.ok, result.failures
    assert [r.messages[0]["content"] for r in requests] == [
        "Write a haiku.",
        "Judge it.",
        "Write a haiku.",
        "Judge it.",
    ]
    redraft = requests[2].messages[-1]["content"]
    assert redraft.startswith("about rain\n\nYour previous answer:\n[")
    assert "A reviewer rejected it: too vague" in redraft
    assert result.output == result.nodes["draft_1"].output.payload
    nodes = result.graph.nodes
    assert nodes["draft_1"].dependencies == ("draft",) and nodes["draft_1"].control == ("verify",)
    assert nodes["verify_1"].dependencies == ("draft_1",)


async def test_refine_makes_no_call_after_a_first_pass():
    rules = [{"match": {"system": "Judge"}, "json": {"pass": True, "feedback": "fine"}}]
    with sim_server_thread(replies=rules) as server:
        resources = http_resources(server.url, "fast", "smart")
        output = await run(refiner(), "x", resources=resources)
        assert [r.messages[0]["content"] for r in server.model.requests] == [
            "Write a haiku.",
            "Judge it.",
        ]
    assert output.endswith("] x")


async def test_refine_raises_with_the_last_draft_when_nothing_passes():
    rules = [{"match": {"system": "Judge"}, "json": {"pass": False, "feedback": "no"}}]
    with sim_server_thread(replies=rules) as server:
        resources = http_resources(server.url, "fast", "smart")
        result = await execute(refiner(max_rounds=2), "x", resources=resources)
        assert len(server.model.requests) == 4
    error = result.forward_error
    assert isinstance(error, LoopLimitError) and error.steps == 2
    assert error.last == result.nodes["draft_1"].output.payload


@plait.op
def long_enough(task: str, answer: str) -> tuple[bool, str]:
    return len(answer) > len(task) + 20, "say more"


async def test_refine_with_an_op_verifier_given_task_and_answer():
    rules = [
        {"match": {"user": "say more"}, "reply": "a long and careful answer to it"},
        {"reply": "short"},
    ]
    with sim_server_thread(replies=rules) as server:
        refine = Refine(LLMInference("fast"), long_enough)
        output = await run(refine, "q", resources=http_resources(server.url, "fast"))
        assert len(server.model.requests) == 2
    assert output == "a long and careful answer to it"


async def test_a_verifier_that_returns_text_fails_the_run_with_the_fix():
    with sim_server_thread() as server:
        refine = Refine(LLMInference("fast"), LLMInference("fast", system_prompt="Judge."))
        with pytest.raises(ExecutionError, match="response_format=VERDICT_SCHEMA"):
            await run(refine, "q", resources=http_resources(server.url, "fast"))
        assert len(server.model.requests) == 2


ITEMS = ["q1", "q2", "q3", "q4", "q5", "q6"]


async def test_map_list_calls_overlap_up_to_the_cap():
    rules = [{"match": {"system": "Split"}, "json": {"items": ITEMS}}]
    with sim_server_thread(replies=rules, latency=0.2) as server:
        mapper = MapList(
            LLMInference("fast", system_prompt="Split it.", response_format=LIST_SCHEMA),
            LLMInference("fast", system_prompt="Answer briefly."),
            LLMInference("fast", system_prompt="Join."),
        )
        resources = http_resources(server.url, "fast", max_concurrent=3)
        result = await execute(mapper, "big question", resources=resources)
        requests = server.model.requests
        peak = server.model.stats.peak_in_flight
    assert result.ok, result.failures
    assert peak == 3  # six answers, three at a time: the cap, reached and held
    assert [r.messages[0]["content"] for r in requests][::7] == ["Split it.", "Join."]
    assert sorted(r.messages[-1]["content"] for r in requests[1:7]) == ITEMS
    answers = [f"each{s}" for s in ["", "_1", "_2", "_3", "_4", "_5"]]
    assert list(result.nodes) == ["split", *answers, "join"]
    join = result.graph.nodes["join"]
    assert join.dependencies == tuple(answers) and join.control == ("split",)
    joined = requests[7].messages[-1]["content"].split("\n\n")
    assert joined == [result.nodes[a].output.payload for a in answers]


async def test_map_list_over_text_lines_without_join_returns_the_list():
    rules = [{"match": {"system": "List"}, "reply": "apples\n\n  pears \nplums"}]
    with sim_server_thread(replies=rules) as server:
        mapper = MapList(LLMInference("fast", system_prompt="List fruit."), LLMInference("fast"))
        output = await run(mapper, "fruit", resources=http_resources(server.url, "fast"))
        asked = [r.messages[-1]["content"] for r in server.model.requests[1:]]
    assert asked == ["apples", "pears", "plums"]
    assert [line.split("] ")[1] for line in output] == asked


async def test_map_list_refuses_a_split_that_is_not_a_list():
    rules = [{"match": {"system": "Split"}, "json": {"a": 1}}]
    with sim_server_thread(replies=rules) as server:
        split = LLMInference("fast", system_prompt="Split.", response_format={"type": "object"})
        with pytest.raises(ExecutionError, match="one list field"):
            await run(
                MapList(split, LLMInference("fast")),
                "x",
                resources=http_resources(server.url, "fast"),
            )
        assert len(server.model.requests) == 1


@plait.op
def numbered(answers: list) -> str:
    return " | ".join(f"{i}. {a}" for i, a in enumerate(answers, 1))


@plait.op
def shout(item: dict) -> str:
    return item["name"].upper()


async def test_map_list_with_ops_for_each_and_join():
    rules = [{"match": {"system": "Split"}, "json": [{"name": "ann"}, {"name": "bo"}]}]
    split = LLMInference(
        "fast",
        system_prompt="Split.",
        response_format={"type": "array", "items": {"type": "object"}},
    )
    with sim_server_thread(replies=rules) as server:
        mapper = MapList(split, shout, numbered)
        result = await execute(mapper, "x", resources=http_resources(server.url, "fast"))
        assert len(server.model.requests) == 1
    assert result.output == "1. ANN | 2. BO"
    assert result.graph.nodes["numbered"].dependencies == ("shout", "shout_1")


def not_an_op(city: str) -> str:
    return city


@plait.op
def variadic(*cities: str) -> str:
    return ""


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ToolAgent("m", [not_an_op]), "must be an @plait.op function; got function"),
        (lambda: ToolAgent("m", weather), "takes a list of @plait.op functions"),
        (lambda: ToolAgent("m", [weather, weather]), "two tools are named 'weather'"),
        (lambda: ToolAgent("m", [variadic]), "'cities' is variadic positional"),
        (lambda: ToolAgent("m", [plait.op(name="a b")(not_an_op)]), "name 'a b' is not accepted"),
        (lambda: ToolAgent("m", [weather], max_steps=0), r"max_steps=...\) must be an int >= 1"),
        (lambda: Refine("draft", long_enough), r"Refine\(draft=...\) must be a Module"),
        (lambda: Refine(LLMInference("m"), long_enough, max_rounds=True), "max_rounds"),
        (lambda: Refine(LLMInference("m"), long_enough, redraft="{draft}"), r"uses \{draft\}"),
        (lambda: MapList(LLMInference("m"), print), r"MapList\(each=...\) must be a Module"),
    ],
)
def test_stock_modules_check_their_arguments(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
