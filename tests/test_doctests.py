"""The usage examples in module docstrings run, and give what they show (doctest).

pytest's --doctest-modules is not used: the repository's root is the package `equalinfo`, and pytest would import
its modules under other names. So the modules with examples are listed here and imported as the package's.
"""
import doctest
import importlib

import pytest

MODULES_WITH_EXAMPLES = ["equalinfo.ref.ac", "equalinfo.ref.equalinfo", "equalinfo.api"]


@pytest.mark.parametrize("name", MODULES_WITH_EXAMPLES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples to run"
    assert result.failed == 0, f"{result.failed} of {name}'s {result.attempted} examples failed (output above)"


def test_every_module_with_examples_is_listed():
    """A module whose docstrings gain examples must be added to the list, or they would never run. The package's
    modules are its root modules and its source folders (tests/test_layering.py), never a virtual environment or
    build folder that happens to sit inside the checkout (CI's .ci-venv does)."""
    from test_layering import ROOT, ROOT_MODULES, SOURCE_FOLDERS

    paths = [ROOT / f"{name}.py" for name in ROOT_MODULES]
    paths += [path for folder in SOURCE_FOLDERS for path in (ROOT / folder).rglob("*.py")]
    found = set()
    for path in paths:
        parts = path.relative_to(ROOT).with_suffix("").parts
        if ">>> " in path.read_text(encoding="utf-8"):
            found.add(".".join(("equalinfo",) + tuple(p for p in parts if p != "__init__")))
    assert found == set(MODULES_WITH_EXAMPLES)
