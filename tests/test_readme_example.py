"""README's "Python use" example runs as written: code a reader copies must work, and its own assert checks that
the Equal-Info windows decode back to the text."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_use_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) == 1, "README should hold one ```python example"
    exec(compile(blocks[0], "README.md (Python use)", "exec"), {})
    assert "bits/byte with plain AC" in capsys.readouterr().out
