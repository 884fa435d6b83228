"""README's "Python use" examples run as written: code a reader copies must work, and their own asserts check that
the files and the Equal-Info windows decode back to the text."""
import re
from pathlib import Path

from helpers import english_text
from test_m1_files import save_m1

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) == 2, "README should hold two ```python examples: the API, then the reference code"
    return blocks


def test_python_use_example_runs(capsys):
    exec(compile(python_blocks()[1], "README.md (Python use)", "exec"), {})
    assert "bits/byte with plain AC" in capsys.readouterr().out


def test_python_api_example_runs(tmp_path, monkeypatch):
    """In a folder holding the files it names: a text, a larger one and an M1 checkpoint (a small random one)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.txt").write_bytes(english_text(300))  # the shipped M1 codes it: KB/s
    (tmp_path / "big.txt").write_bytes(english_text(3000))
    save_m1(tmp_path / "m1.npz")
    exec(compile(python_blocks()[0], "README.md (Python API)", "exec"), {})
    assert (tmp_path / "big.eqi").read_bytes()[:4] == b"\x89EQI"
