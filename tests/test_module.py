import json

import pytest

from plait import ConfigError, ExecutionError, LLMInference, Module, Parameter


class Leafish(Module):
    def __init__(self, prompt: str = "p"):
        super().__init__()
        self.prompt = Parameter(prompt, description="the prompt")
        self.temperature = 0.3

    def forward(self, x):
        return f"{x}!"


class Mid(Module):
    def __init__(self, shared: Parameter):
        super().__init__()
        self.left = Leafish("l")
        self.right = Leafish("r")
        self.shared = shared


class Top(Module):
    def __init__(self):
        super().__init__()
        self.shared = Parameter("s", description="shared instructions")
        self.mid = Mid(self.shared)
        self.solo = LLMInference("fast", system_prompt=self.shared)


def test_assignment_registers_modules_and_parameters_in_order():
    top = Top()
    assert [name for name, _ in top.named_children()] == ["mid", "solo"]
    assert [name for name, _ in top.named_modules()] == ["", "mid", "mid.left", "mid.right", "solo"]
    assert [name for name, _ in top.named_parameters()] == [
        "shared",
        "mid.left.prompt",
        "mid.right.prompt",
    ]


def test_shared_parameter_is_listed_once_under_its_first_name():
    top = Top()
    params = list(top.parameters())
    assert len(params) == 3
    assert params[0] is top.shared is top.mid.shared is top.solo.system_prompt
    assert top.shared.name == "shared"


def test_shared_module_is_listed_once():
    class TwoRefs(Module):
        def __init__(self):
            super().__init__()
            self.a = Leafish()
            self.b = self.a

    m = TwoRefs()
    assert [name for name, _ in m.named_modules()] == ["", "a"]
    assert len(list(m.parameters())) == 1


def test_recurse_false_lists_own_parameters_only():
    top = Top()
    assert [n for n, _ in top.named_parameters(recurse=False)] == ["shared"]


def test_reassigning_an_attribute_moves_it_between_registries():
    m = Leafish()
    m.prompt = "now a plain string"
    assert list(m.named_parameters()) == []
    assert m.prompt == "now a plain string"
    m.child = Leafish()
    m.child = None
    assert list(m.named_children()) == []
    assert m.child is None


def test_delattr_unregisters():
    top = Top()
    del top.solo
    assert [n for n, _ in top.named_children()] == ["mid"]
    with pytest.raises(AttributeError, match="no attribute 'solo'"):
        top.solo


def test_forgetting_super_init_is_a_clear_error():
    class Broken(Module):
        def __init__(self):
            self.x = Leafish()

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) first in Broken"):
        Broken()


def test_train_eval_set_flag_everywhere():
    top = Top()
    assert top.training is False
    assert top.train() is top
    assert all(m.training for m in top.modules())
    top.eval()
    assert not any(m.training for m in top.modules())


def test_requires_grad_freezes_and_unfreezes_all():
    top = Top()
    top.requires_grad_(False)
    assert not any(p.requires_grad for p in top.parameters())
    top.requires_grad_()
    assert all(p.requires_grad for p in top.parameters())


def test_state_dict_round_trips_through_json():
    top = Top()
    top.mid.left.prompt.apply_update("learned")
    state = json.loads(json.dumps(top.state_dict()))
    assert state == {"shared": "s", "mid.left.prompt": "learned", "mid.right.prompt": "r"}
    fresh = Top()
    assert fresh.load_state_dict(state) == ([], [])
    assert fresh.state_dict() == state
    assert fresh.solo.system_prompt.value == "s"


def test_load_state_dict_reports_every_problem_at_once_and_changes_nothing():
    top = Top()
    with pytest.raises(ConfigError) as err:
        top.load_state_dict({"shared": 5, "mid.left.prompt": "new", "bogus": "x"})
    msg = str(err.value)
    assert "missing keys: mid.right.prompt" in msg
    assert "unexpected keys: bogus" in msg
    assert "shared: expected str, got int" in msg
    assert top.mid.left.prompt.value == "l"


def test_load_state_dict_non_strict_returns_mismatches():
    top = Top()
    result = top.load_state_dict({"shared": "new", "extra": "x"}, strict=False)
    assert result.missing == ["mid.left.prompt", "mid.right.prompt"]
    assert result.unexpected == ["extra"]
    assert top.shared.value == "new"


def test_calling_a_composite_module_outside_a_run_runs_forward():
    assert Leafish()("x") == "x!"


def test_llm_inference_outside_a_run_says_how_to_run_it():
    class Pipeline(Module):
        def __init__(self):
            super().__init__()
            self.llm = LLMInference("fast")

        def forward(self, x):
            return self.llm(x)

    with pytest.raises(ExecutionError, match=r"outside a plait run.*plait.run\(module"):
        Pipeline()("hello")


def test_forward_must_be_defined():
    class NoForward(Module):
        pass

    with pytest.raises(NotImplementedError, match="NoForward must define forward"):
        NoForward()("x")


def test_repr_shows_tree():
    r = repr(Top())
    assert r.splitlines()[0] == "Top("
    assert "(mid): Mid(" in r
    assert "(left): Leafish()" in r
    assert "(solo): LLMInference('fast', system_prompt=Parameter('shared'))" in r


def test_dir_lists_registered_members():
    assert {"mid", "solo", "shared"} <= set(dir(Top()))


def test_members_read_as_attributes_through_every_change():
    """A member reads back as itself after assignment, swap, kind change, deletion and copies."""
    import copy
    import pickle

    top = Top()
    solo = top.solo
    assert top.solo is solo and top.shared is top._parameters["shared"]
    replacement = LLMInference("smart")
    top.solo = replacement
    assert top.solo is replacement and dict(top.named_children())["solo"] is replacement
    top.solo = Parameter("now a parameter", description="d")
    assert top.solo.value == "now a parameter" and "solo" not in dict(top.named_children())
    del top.solo
    with pytest.raises(AttributeError, match="no attribute 'solo'"):
        top.solo
    for clone in (copy.deepcopy(top), pickle.loads(pickle.dumps(top))):
        assert clone.mid is dict(clone.named_children())["mid"]
        assert clone.mid.left.prompt is dict(clone.named_parameters())["mid.left.prompt"]


def test_a_member_named_like_a_method_keeps_the_method():
    """A child called ``train`` is registered, but ``module.train()`` is still the method."""
    m = Leafish()
    m.train = Leafish("child")  # type: ignore[assignment,method-assign]
    assert "train" in dict(m.named_children())
    assert m.train() is m and m.training  # the method, which returns the module
