"""A built wheel carries the shipped M1, and the package installed from it loads the model README names.

The shipped M1 is package data (setup.cfg's package_data); an editable install reads it from the checkout, so only
a real wheel shows that an ordinary `pip install` gets it. The wheel is built offline, as `pip wheel --no-deps
--no-build-isolation --no-index` does it with the setuptools and wheel already installed (the test extra names
wheel: setuptools before 70.1 needs it for bdist_wheel), from a copy of the package's files in a temporary folder,
so the build's build/ and egg-info never land in the checkout. About 10-20 s on the 2-core dev machine.
"""
import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from equalinfo.filetool import shipped_model

ROOT = Path(__file__).resolve().parents[1]
MODEL_IN_WHEEL = "equalinfo/filetool/shipped_m1.npz"


def package_sources(target):
    """Copy what a wheel is built from (setup.cfg, pyproject.toml, README.md, the root modules and the folders of
    setup.cfg's packages) into target."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    for module in ROOT.glob("*.py"):
        shutil.copy2(module, target / module.name)
    for package in config["options"]["packages"].split():
        parts = package.split(".")[1:]  # equalinfo = . (package_dir): equalinfo.fast.cpu is fast/cpu
        if parts:
            shutil.copytree(ROOT.joinpath(*parts), target.joinpath(*parts), dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def build_wheel(tmp_path):
    """The path of the wheel built offline from a copy of the sources (pytest.skip if this Python cannot build
    one without the network: no `wheel` for an old setuptools)."""
    source, out = tmp_path / "src", tmp_path / "dist"
    source.mkdir()
    package_sources(source)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(out), str(source)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and "invalid command 'bdist_wheel'" in done.stdout + done.stderr:
        pytest.skip("no offline wheel build here: pip install wheel (the test extra has it)")
    assert done.returncode == 0, done.stdout + done.stderr
    wheels = list(out.glob("equalinfo-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_a_built_wheel_carries_the_shipped_m1_and_the_install_loads_it(tmp_path):
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert MODEL_IN_WHEEL in names
        assert archive.read(MODEL_IN_WHEEL) == shipped_model.PATH.read_bytes()
        metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
        assert shipped_model.FINGERPRINT in archive.read(metadata).decode("utf-8")  # README, the long description
    installed = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                           str(installed), str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    check = ("import sys; from equalinfo.filetool import shipped_model as s; from equalinfo.ref.fingerprint import "
             "fingerprint; m = s.load(); print(s.__file__); print(fingerprint(m.arrays()))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    module_file, found = done.stdout.split()
    assert Path(module_file).is_relative_to(installed), module_file  # the wheel's copy, not the checkout's
    assert found == shipped_model.FINGERPRINT
    assert found in (ROOT / "README.md").read_text(encoding="utf-8")
