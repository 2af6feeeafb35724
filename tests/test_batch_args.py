"""Batch items with several arguments: `Args`, and items that do not fit forward are refused."""

import pytest
from _exec_support import http_resources
from _sim_support import sim_server_thread

from plait import Args, ConfigError, LLMInference, Module, ResourceConfig, run, run_batch


class TopK(Module):
    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast")

    def forward(self, q, k=2):
        return self.llm(f"top-{k} docs for {q}")


class Pair(Module):
    def __init__(self):
        super().__init__()
        self.llm = LLMInference("fast")

    def forward(self, pair):
        return self.llm(f"pair {pair}")


async def test_args_items_spread_positional_and_keyword_arguments():
    resources = ResourceConfig.simulated("fast")
    items = await run_batch(
        TopK(),
        [Args("q1", 3), Args("q2", k=5), Args(q="q3"), "q4"],
        resources=resources,
        progress=False,
    )
    assert all(item.ok for item in items)
    prompts = [item.result.nodes["llm"].request.messages[-1]["content"] for item in items]
    assert prompts[0] == "top-3 docs for q1"
    assert "top-5 docs for q2" in str(prompts[1])
    assert "top-2 docs for q3" in str(prompts[2])
    assert "top-2 docs for q4" in str(prompts[3])
    assert items[0].input == Args("q1", 3)
    assert items[1].output == await run(TopK(), "q2", k=5, resources=resources)


async def test_a_plain_tuple_for_a_several_parameter_forward_is_refused_before_any_request():
    with sim_server_thread() as server:
        resources = http_resources(server.url, "fast")
        with pytest.raises(ConfigError) as info:
            await run_batch(TopK(), ["fine", ("q1", 3)], resources=resources, progress=False)
        assert server.model.stats.total == 0
    message = str(info.value)
    assert "batch item 1" in message
    assert "TopK.forward(q, k=2)" in message
    assert "plait.Args(*item)" in message


async def test_a_dict_of_parameter_names_is_refused_and_args_from_row_passes_it():
    resources = ResourceConfig.simulated("fast")
    with pytest.raises(ConfigError, match=r"batch item 0 .*Args\(\*\*item\)"):
        await run_batch(TopK(), [{"q": "a", "k": 4}], resources=resources, progress=False)
    [item] = await run_batch(
        TopK(), [Args.from_row({"q": "a", "k": 4})], resources=resources, progress=False
    )
    assert "top-4 docs for a" in str(item.result.nodes["llm"].request.messages[-1]["content"])


async def test_items_with_missing_or_extra_arguments_name_the_item_and_signature():
    resources = ResourceConfig.simulated("fast")
    with pytest.raises(ConfigError) as info:
        await run_batch(TopK(), [Args(), Args("a")], resources=resources, progress=False)
    assert "batch item 0 (Args())" in str(info.value)
    assert "TopK.forward(q, k=2)" in str(info.value)
    assert "missing a required argument: 'q'" in str(info.value)
    with pytest.raises(ConfigError, match=r"batch item 0 .*unexpected keyword argument 'n'"):
        await run_batch(TopK(), [Args("a", n=1)], resources=resources, progress=False)


async def test_a_tuple_for_a_one_parameter_forward_is_that_parameter():
    resources = ResourceConfig.simulated("fast")
    [item] = await run_batch(Pair(), [("a", 1)], resources=resources, progress=False)
    assert "pair ('a', 1)" in str(item.result.nodes["llm"].request.messages[-1]["content"])
    with pytest.raises(ConfigError, match="batch item 0"):
        await run_batch(Pair(), [Args("a", 1)], resources=resources, progress=False)
