"""Public constructors check their arguments when called, naming the argument, the value and what is allowed."""

import pytest

import plait
from plait import ConfigError, ExecutionSettings, LLMInference, Parameter, ResourceConfig
from plait.optimization import AuditLog, HumanFeedback, LLMJudge, Optimizer
from plait.simulator import SimulatorServer
from plait_jupyter import GraphView


class Tiny(plait.Module):
    def __init__(self):
        super().__init__()
        self.prompt = Parameter("Be brief.", description="style")
        self.llm = LLMInference("fast", system_prompt=self.prompt)

    def forward(self, text):
        return self.llm(text)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LLMInference("fast", stream="yes"), "stream must be True or False; got 'yes'"),
        (lambda: LLMInference("fast", tools="search"), "tools must be a list of tool specs"),
        (lambda: Parameter("x", description=3), "description=3: must be a string, or None"),
        (
            lambda: Parameter("x", "d", requires_grad="no"),
            "requires_grad='no': must be True or False",
        ),
        (lambda: ExecutionSettings(profile="yes"), "profile='yes': must be True or False"),
        (lambda: ExecutionSettings(checkpoint=3), "checkpoint=3: must be a file path"),
        (lambda: ExecutionSettings(cache=2.5), "cache=2.5: must be True, False or a directory"),
        (lambda: Optimizer(Tiny(), alias=""), "alias='': must be a non-empty string"),
        (
            lambda: Optimizer(Tiny(), skip_satisfied="sometimes"),
            "skip_satisfied='sometimes': must be True or False",
        ),
        (lambda: Optimizer(Tiny(), audit_log=42), "audit_log=42: must be a file path"),
        (lambda: Optimizer(Tiny(), resources=7), "resources must be a ResourceConfig"),
        (lambda: LLMJudge(None, "be right"), "alias=None: must be a non-empty string"),
        (lambda: HumanFeedback(responses="yes"), "responses='yes': must be a callable"),
        (lambda: plait.op(name=5), "name=5: must be a non-empty string, or None"),
        (lambda: SimulatorServer(port=70000), "port=70000: must be an integer from 0 to 65535"),
        (lambda: AuditLog(3), "path=3: must be a file path"),
        (lambda: GraphView(height="tall"), "height='tall': must be an integer >= 1, or None"),
        (lambda: GraphView(group_by="helper"), "group_by='helper': must be one of 'module'"),
    ],
)
def test_bad_arguments_are_refused_when_the_constructor_is_called(build, message):
    with pytest.raises(ConfigError) as info:
        build()
    assert message in str(info.value)


async def test_batch_callbacks_are_checked():
    with pytest.raises(ConfigError, match="on_progress='print': must be a callable"):
        await plait.run_batch(
            Tiny(), ["a"], resources=ResourceConfig.simulated("fast"), on_progress="print"
        )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("replies", [{"reply": "hi {nope}"}], "replies[0]: rule reply uses the placeholder {nope}"),
        (
            "replies",
            ["fine", {"match": {"user": "regex:("}, "reply": "x"}],
            "replies[1]: match.user is not a valid regular expression",
        ),
        ("replies", [{"reply": "a", "bogus": 1}], "replies[0] has unknown keys ['bogus']"),
        ("faults", [{"kind": "server_eror"}], "faults[0]: fault.kind must be one of"),
        (
            "faults",
            [{"kind": "server_error", "status": 404}],
            "faults[0]: fault 'server_error'.status must be an HTTP status from 500 to 599",
        ),
    ],
)
def test_simulator_rules_are_checked_when_the_resource_config_is_built(field, value, message):
    with pytest.raises(ConfigError) as info:
        ResourceConfig.simulated("fast", **{field: value})
    assert "endpoint 'fast'" in str(info.value)
    assert message in str(info.value)
