"""Every example in plait's docstrings runs and shows what it claims."""

import doctest
import importlib
import pkgutil

import pytest

import plait
import plait_jupyter


def _modules() -> list[str]:
    names = []
    for package in (plait, plait_jupyter):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):
                names.append(info.name)
    return sorted(names)


def _with_examples() -> list[str]:
    finder = doctest.DocTestFinder()
    return [
        name
        for name in _modules()
        if any(test.examples for test in finder.find(importlib.import_module(name)))
    ]


MODULES = _with_examples()


def test_the_docstrings_hold_examples():
    assert len(MODULES) >= 8, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert attempted > 0
    assert failed == 0, (
        f"{failed} of {attempted} examples in {name} failed (run: python -m doctest -v)"
    )
