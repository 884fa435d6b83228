"""`equalinfo conformance check DIR --implementation CMD`: an outside program, in any language, answers each
family's questions, and the checker compares its answers with the vectors.

The protocol (docs/conformance.md, "Checking another implementation"), one call per family:
1. The checker makes a fresh empty directory W and writes the family's request there: request.json and
   request.npz, the family's vector files in their usual format with the expected answers left out (each family
   module's request()).
2. It runs CMD FAMILY W (CMD split like a shell command line, run without a shell) and waits at most `timeout`
   seconds; on a timeout it kills the program's whole process group.
3. Exit status 0: the program has written W/response.json, one JSON object {answer key: value} (numbers, nested
   lists of numbers, true/false); every expected answer is compared with it (Tally.answer: bit for bit, within the
   family's tolerance, or "must be rejected"), and keys not asked for are ignored. Exit status NOT_IMPLEMENTED (3):
   the program does not implement this family, reported as such and not counted as a failure. Any other status,
   a timeout, or a missing or unreadable response fails the family with one line that says which.

JSON is the response's format because every language writes it; floats written as their shortest round-trip
decimal (or with 17 significant digits) read back exactly; a float32 answer is compared after rounding the
JSON's float64 to float32, so writing the float32 widened to float64 is exact.

conformance.answers_of(family, description, arrays, backend) answers a request with our own code: the example
adapter of the docs wraps it, and tests/test_conformance_protocol.py runs that adapter and broken ones.
"""
import json
import os
import shlex
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from equalinfo.conformance.files import VectorError, json_bytes, npz_bytes, read_family, read_manifest
from equalinfo.conformance.tally import Tally

NOT_IMPLEMENTED = 3  # the exit status of a program that does not implement the family it is asked
REQUEST_JSON, REQUEST_NPZ, RESPONSE = "request.json", "request.npz", "response.json"


class ProtocolError(ValueError):
    """The implementation cannot be run at all (no such program, bad command line or timeout): one line."""


def command_words(command):
    """CMD split like a shell command line; ProtocolError if it is empty or unbalanced."""
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise ProtocolError(f"--implementation {command!r} is not a valid command line: {error}") from None
    if not words:
        raise ProtocolError("--implementation needs a command")
    return words


def check(directory, command, families, format_version, only=None, timeout=300.0):
    """[(family, passed, checks, failures, seconds)] of the program `command` against the vector set in
    `directory`; passed is None for a family the program does not implement. `families`: the family modules
    (conformance.FAMILIES). Raises VectorError if the set cannot be read, ProtocolError if the program cannot be
    started."""
    if not timeout > 0:
        raise ProtocolError(f"--timeout must be a positive number of seconds, got {timeout}")
    words = command_words(command)
    manifest = read_manifest(directory, format_version)
    known = {family.NAME: family for family in families}
    unknown = [name for name in only or () if name not in known]
    if unknown:
        raise VectorError(f"unknown family {unknown[0]!r}; families: {', '.join(known)}")
    results = []
    for name in (list(known) if only is None else list(only)):
        tally, started = Tally(), time.perf_counter()
        description, arrays = read_family(directory, manifest, name)
        asked_description, asked_arrays, expected = known[name].request(description, arrays)
        with tempfile.TemporaryDirectory(prefix=f"equalinfo-{name}-") as work:
            (Path(work) / REQUEST_JSON).write_bytes(json_bytes(asked_description))
            (Path(work) / REQUEST_NPZ).write_bytes(npz_bytes(asked_arrays))
            status, response = run_program(words, name, work, timeout)
        if status == NOT_IMPLEMENTED:
            passed = None
        else:
            if response is None or isinstance(response, str):
                tally.expect(False, "program", response or f"exited with status 0 but wrote no {RESPONSE}")
            else:
                for key, want in expected.items():
                    tally.answer(key, want, response)
            passed = not tally.failures
        results.append((name, passed, tally.checks, tally.failures, time.perf_counter() - started))
    return results


def run_program(words, family, work, timeout):
    """(exit status, response): the response's dict, or a one-line reason (str) why there is none."""
    try:
        process = subprocess.Popen(words + [family, work], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True)
    except OSError as error:
        raise ProtocolError(f"cannot run --implementation {shlex.join(words)}: {error.strerror or error}") from None
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None, f"did not answer within {timeout:g} s (--timeout) and was stopped"
    if process.returncode == NOT_IMPLEMENTED:
        return NOT_IMPLEMENTED, None
    if process.returncode != 0:
        last = next((line for line in reversed(err.decode("utf-8", "replace").splitlines()) if line.strip()),
                    "nothing on stderr")
        return process.returncode, f"exited with status {process.returncode}: {last.strip()[:200]}"
    path = Path(work) / RESPONSE
    if not path.is_file():
        return 0, None
    try:
        response = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as error:
        return 0, f"{RESPONSE} is not valid JSON: {error}"
    if not isinstance(response, dict):
        return 0, f"{RESPONSE} holds a {type(response).__name__}, not an object of answers"
    return 0, response
