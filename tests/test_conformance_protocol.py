"""`conformance check --implementation CMD` (conformance/protocol.py, docs/conformance.md): the docs' example
adapter, which answers with our ref, passes every family; an adapter that flips one bit, crashes, hangs, answers
garbage or implements nothing gets one clear report line per family, never a traceback."""
import re
import sys
from pathlib import Path

import pytest

from equalinfo import conformance
from equalinfo.conformance.protocol import ProtocolError
from helpers import fails_cli, run_cli

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "conformance_vectors"
WRITE = 'with open(f"{work}/response.json", "w") as stream:'


def docs_adapter():
    """The adapter block of docs/conformance.md, exactly as a reader copies it."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "conformance.md").read_text(), re.S)
    [adapter] = [block for block in blocks if block.startswith("# adapter.py")]
    assert WRITE in adapter
    return adapter


def adapter(tmp_path, source, name="adapter.py"):
    """The command line running `source` as a program with this Python."""
    path = tmp_path / name
    path.write_text(source)
    return f"{sys.executable} {path}"


def results_by_family(results):
    return {name: (passed, failures) for name, passed, _, failures, _ in results}


def test_the_docs_adapter_passes_every_family(tmp_path):
    results = conformance.check_implementation(VECTORS, adapter(tmp_path, docs_adapter()))
    assert [name for name, *_ in results] == conformance.family_names()
    assert all(passed is True and checks > 0 for _, passed, checks, _, _ in results), \
        conformance.table(results, "the docs adapter", VECTORS)


def test_one_flipped_bit_fails_that_family_with_the_key_and_index(tmp_path, capsys):
    flip = ('if family == "coder":\n    answers["encode.003"] = np.array(answers["encode.003"])\n'
            '    answers["encode.003"][5] ^= 1\n')
    command = adapter(tmp_path, docs_adapter().replace(WRITE, flip + WRITE))
    status, out, _ = run_cli(capsys, "conformance", "check", VECTORS, "--implementation", command,
                             "--family", "coder", "--family", "tokens")
    assert status == 1
    lines = out.splitlines()
    assert any(line.startswith("coder ") and "FAIL" in line for line in lines)
    assert any(line.startswith("tokens ") and "pass" in line for line in lines)
    documented = re.search(r"\n    (FAIL coder: encode\.003: .*)\n", (ROOT / "docs" / "conformance.md").read_text())
    assert documented.group(1) in lines  # the report is the one the docs show


@pytest.mark.parametrize("body, says", [
    ("raise RuntimeError('the coder broke')", "exited with status 1: RuntimeError: the coder broke"),
    ("import time\ntime.sleep(60)", "did not answer within 1 s"),
    ("pass", "exited with status 0 but wrote no response.json"),
    ("import sys\nopen(sys.argv[2] + '/response.json', 'w').write('[1, 2')", "response.json is not valid JSON"),
    ("import sys, json\njson.dump({'encode.003': 'bits'}, open(sys.argv[2] + '/response.json', 'w'))",
     "encode.003: is not a number or an array of numbers"),
    ("import sys, json\njson.dump({'encode.003': [0.5, 1]}, open(sys.argv[2] + '/response.json', 'w'))",
     "encode.003: holds a number that is not an integer"),
])
def test_a_broken_adapter_fails_in_one_line(tmp_path, body, says):
    results = conformance.check_implementation(VECTORS, adapter(tmp_path, body), ["coder"], timeout=1)
    passed, failures = results_by_family(results)["coder"]
    assert passed is False and any(says in failure for failure in failures), failures
    assert all("\n" not in failure and "Traceback" not in failure for failure in failures)


def test_a_family_not_implemented_is_reported_not_failed(tmp_path, capsys):
    body = docs_adapter().replace("family, work = sys.argv[1], sys.argv[2]",
                                  "family, work = sys.argv[1], sys.argv[2]\nif family != 'tokens':\n    sys.exit(3)")
    status, out, _ = run_cli(capsys, "conformance", "check", VECTORS, "--implementation", adapter(tmp_path, body),
                             "--family", "tokens", "--family", "packing")
    assert status == 0 and "packing            n/impl" in out
    assert out.splitlines()[-1] == "1 of 2 families pass; 1 not implemented"


def test_a_program_that_cannot_start_is_one_error_line(tmp_path, capsys):
    fails_cli(capsys, "conformance", "check", VECTORS, "--implementation", tmp_path / "no-such-program",
              says="cannot run --implementation")
    fails_cli(capsys, "conformance", "check", VECTORS, "--implementation", "python -c 'unbalanced",
              says="not a valid command line")
    with pytest.raises(ProtocolError, match="--timeout must be a positive"):
        conformance.check_implementation(VECTORS, "true", timeout=0)
