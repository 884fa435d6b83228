"""Every package's __init__.py docstring is its map: it names each of the package's modules, and nothing else.

A reader starts at a package's map (README "Layout"); a module the map leaves out is one the reader
never finds, and a map that names a module that was moved or deleted sends them nowhere. Both happen silently when
code moves, so the maps are checked from the source here, the way tests/test_layering.py checks the imports.

A map names module `m` of package `p` as `m.py`, `m/` (a subpackage), `p.m` or `p/m.py`.
"""
import ast
import re
from pathlib import Path

import pytest

from test_layering import ROOT, SOURCE_FOLDERS


def packages():
    """[package folder] of every package: the root and each folder with an __init__.py below the source folders."""
    found = [ROOT]
    for folder in SOURCE_FOLDERS:
        found += sorted(path.parent for path in (ROOT / folder).rglob("__init__.py"))
    return found


def modules_of(package):
    """The names of a package's own modules and subpackages (not __init__, not __main__: `python -m` runs it)."""
    names = {path.stem for path in package.glob("*.py")} - {"__init__", "__main__"}
    if package == ROOT:
        names |= set(SOURCE_FOLDERS)
    else:
        names |= {path.parent.name for path in package.glob("*/__init__.py")}
    return names


def map_of(package):
    return ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""


def names_module(text, package, module):
    dotted = ".".join(package.relative_to(ROOT.parent).parts[1:])  # "", "data", "fast.cpu"
    spellings = [rf"{module}\.py", rf"{module}/"]
    if dotted:
        spellings += [rf"{re.escape(dotted)}\.{module}", rf"{re.escape(dotted.replace('.', '/'))}/{module}\.py"]
    return any(re.search(rf"(?<![\w./]){spelling}(?!\w)", text) for spelling in spellings)


def named_paths(text, package):
    """The files a map names as `something.py` that exist neither in the package nor from the repository root."""
    missing = []
    for path in re.findall(r"(?<![\w./])([\w/]+\.py)(?!\w)", text):
        if not ((package / path).is_file() or (ROOT / path).is_file()):
            missing.append(path)
    return missing


PACKAGES = packages()
IDS = [str(package.relative_to(ROOT)) for package in PACKAGES]


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_map_names_every_module(package):
    text = map_of(package)
    unnamed = sorted(module for module in modules_of(package) if not names_module(text, package, module))
    assert not unnamed, f"{package.relative_to(ROOT)}/__init__.py does not name: {', '.join(unnamed)}"


@pytest.mark.parametrize("package", PACKAGES, ids=IDS)
def test_map_names_no_missing_file(package):
    missing = named_paths(map_of(package), package)
    assert not missing, f"{package.relative_to(ROOT)}/__init__.py names files that do not exist: {missing}"


def test_the_checks_can_fail(tmp_path):
    """A module the map leaves out, and a file it names that is not there, are both seen."""
    package = ROOT / "report"
    text = "seeds.py   several seeds combined\nreport.tables   results.md\ngone.py   moved away"
    assert names_module(text, package, "seeds") and names_module(text, package, "tables")
    assert not names_module(text, package, "figure")
    assert not names_module("report/figure.pyc and figures.py", package, "figure")
    assert named_paths(text, package) == ["gone.py"]
