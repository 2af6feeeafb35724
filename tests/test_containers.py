import pytest

from plait import (
    ConfigError,
    Module,
    ModuleDict,
    ModuleList,
    Parameter,
    ParameterDict,
    ParameterList,
    Sequential,
)


class AddSuffix(Module):
    def __init__(self, suffix: str):
        super().__init__()
        self.suffix = Parameter(suffix, description="text appended")

    def forward(self, x):
        return x + self.suffix.value


def test_sequential_chains_outputs_and_names_by_index():
    seq = Sequential(AddSuffix("a"), AddSuffix("b"))
    assert seq("x") == "xab"
    assert [n for n, _ in seq.named_parameters()] == ["0.suffix", "1.suffix"]
    assert len(seq) == 2 and isinstance(seq[1], AddSuffix)
    assert seq[-1] is seq[1]
    assert isinstance(seq[:1], Sequential) and len(seq[:1]) == 1


def test_sequential_from_mapping_uses_names():
    seq = Sequential({"first": AddSuffix("1"), "second": AddSuffix("2")})
    assert seq("x") == "x12"
    assert [n for n, _ in seq.named_parameters()] == ["first.suffix", "second.suffix"]


def test_module_list_supports_list_operations():
    ml = ModuleList([AddSuffix("a")])
    ml.append(AddSuffix("b"))
    ml.extend([AddSuffix("c")])
    ml += [AddSuffix("d")]
    ml.insert(0, AddSuffix("z"))
    assert [m.suffix.value for m in ml] == ["z", "a", "b", "c", "d"]
    del ml[1]
    assert [m.suffix.value for m in ml] == ["z", "b", "c", "d"]
    ml[0] = AddSuffix("y")
    assert [n for n, _ in ml.named_parameters()] == ["0.suffix", "1.suffix", "2.suffix", "3.suffix"]
    with pytest.raises(IndexError, match="index 9 is out of range for ModuleList of length 4"):
        ml[9]


def test_module_list_rejects_non_modules_clearly():
    with pytest.raises(ConfigError, match="ModuleList holds Modules; item 0 is a str"):
        ModuleList(["not a module"])


def test_nested_containers_register_deeply():
    class Outer(Module):
        def __init__(self):
            super().__init__()
            self.stages = ModuleDict({"draft": ModuleList([AddSuffix("a"), AddSuffix("b")])})
            self.prompts = ParameterList([Parameter("p0", description="d0")])
            self.extra = ParameterDict({"tone": Parameter("calm", description="tone")})

    names = [n for n, _ in Outer().named_parameters()]
    # Parameter containers are modules too, so they follow registration order.
    assert names == ["stages.draft.0.suffix", "stages.draft.1.suffix", "prompts.0", "extra.tone"]
    assert Outer().state_dict()["extra.tone"] == "calm"


def test_module_dict_behaves_like_a_dict():
    md = ModuleDict({"a": AddSuffix("1")})
    md["b"] = AddSuffix("2")
    assert md.keys() == ["a", "b"] and "a" in md and len(md) == 2
    assert list(md) == ["a", "b"]
    assert md.pop("a").suffix.value == "1"
    assert md.keys() == ["b"]
    with pytest.raises(KeyError, match="'zz' is not in this ModuleDict; keys: b"):
        md["zz"]
    with pytest.raises(ConfigError, match="keys must be identifiers"):
        md["has space"] = AddSuffix("x")


def test_parameter_containers_reject_plain_values():
    with pytest.raises(ConfigError, match="ParameterList holds Parameters; item 0 is a str"):
        ParameterList(["raw"])
    with pytest.raises(ConfigError, match="ParameterDict holds Parameters; 'k' is a int"):
        ParameterDict({"k": 3})


def test_parameter_list_indexing():
    pl = ParameterList([Parameter("a", description="x"), Parameter("b", description="y")])
    assert [p.value for p in pl] == ["a", "b"]
    assert pl[-1].value == "b"


def test_removed_members_are_gone_as_attributes():
    items = ModuleList([AddSuffix("a"), AddSuffix("b"), AddSuffix("c")])
    del items[0]
    assert [m.suffix.value for m in items] == ["b", "c"]
    assert getattr(items, "1").suffix.value == "c"
    with pytest.raises(AttributeError):
        getattr(items, "2")  # the old last index is not left behind
    items.insert(0, AddSuffix("z"))
    assert [getattr(items, str(i)).suffix.value for i in range(3)] == ["z", "b", "c"]
    named = ModuleDict({"keys": AddSuffix("k"), "first": AddSuffix("f")})
    assert named.keys() == ["keys", "first"]  # the method, not the member named like it
    assert named["keys"].suffix.value == "k" and named.first.suffix.value == "f"
    del named["first"]
    with pytest.raises(AttributeError):
        named.first
    with pytest.raises(KeyError, match="keys: keys"):
        del named["missing"]
