"""Hostile values on every numeric option of every subcommand, and hostile presets, in-process and in seconds.

The cases are enumerated from the parser itself (cli.build_parser) and the options' description (options.py), so
an option added tomorrow is tried without a new test, and an option added with a bare `type=int` fails here. Each
command runs with its files pointing nowhere: a value the description accepts ends in the missing file's error
line (exit 2) before any work, a value it refuses ends in a line naming the option; never a traceback.
"""
import argparse
import json

import pytest

from equalinfo import cli, options
from equalinfo.train import memory, repro
from equalinfo.train.preset_schema import MAX_DEPTH

from helpers import fails_cli, run_cli

HOSTILE = ["0", "-1", "nan", "inf", "-inf", "1e308", "1" + "0" * 20, "abc"]


def leaf_parsers(parser, words=()):
    """(command words, parser) of every runnable subcommand, e.g. (("analyze", "seq2seq"), parser)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield words, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from leaf_parsers(child, words + (name,))


def numeric_actions(parser):
    return [a for a in parser._actions if isinstance(a.type, options.Number)]


def base_argv(parser, missing):
    """Required arguments filled so that the command fails fast on a missing file once the options parse."""
    argv = []
    for action in parser._actions:
        if not action.option_strings and action.nargs is not argparse.PARSER and action.dest != "help":
            argv.append(str(missing / action.dest))  # positionals are files
        elif action.required:
            argv += [action.option_strings[0], action.choices[0] if action.choices else str(missing / action.dest)]
    flags = {s for a in parser._actions for s in a.option_strings}
    for flag, value in (("--preset", str(missing / "preset.json")), ("--corpus", str(missing / "corpus")),
                        ("--data", str(missing / "data"))):
        if flag in flags and flag not in argv:
            argv += [flag, value]
    return argv


COMMANDS = list(leaf_parsers(cli.build_parser()))


def test_every_numeric_option_is_described():
    """No option reads numbers through a bare int/float: each goes through its entry of options.OPTIONS."""
    bare = [(" ".join(words), action.option_strings) for words, parser in COMMANDS for action in parser._actions
            if action.type in (int, float)]
    assert not bare, f"options without a description in options.py: {bare}"
    described = {action.dest for _, parser in COMMANDS for action in numeric_actions(parser)}
    assert {"words", "max_rows", "samples", "val_texts", "train_texts", "lr", "max_bytes", "scale"} <= described


@pytest.mark.parametrize("words,parser", COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_hostile_values_end_in_one_line(capsys, tmp_path, words, parser):
    missing = tmp_path / "missing"
    for action in numeric_actions(parser):
        flag = action.option_strings[0]
        for value in HOSTILE:
            status, out, err = run_cli(capsys, *words, *base_argv(parser, missing), flag, value)
            assert status in (0, 2), (words, flag, value, status, err)
            assert "Traceback" not in err and "Traceback" not in out, (words, flag, value, err)
            if status == 2:
                assert err.startswith("equalinfo: error: ") and err.count("\n") == 1, (words, flag, value, err)
            try:
                action.type.parse(value)
            except ValueError:  # the description refuses it: the line must say which option
                assert status == 2 and flag in err, (words, flag, value, err)
    assert not missing.exists() or not any(missing.rglob("*")), "a refused command left files behind"


def test_description_refuses_what_a_wrong_range_would_let_through():
    """The Number check itself: bounds included or excluded as described, non-finite never."""
    steps, lr = options.OPTIONS["steps"], options.OPTIONS["lr"]
    assert steps.parse("1") == 1 and steps.parse(str(options.MAX_STEPS)) == options.MAX_STEPS
    for bad in ("0", str(options.MAX_STEPS + 1), "1.5", "nan"):
        with pytest.raises(ValueError):
            steps.parse(bad)
    assert lr.parse("10") == 10.0
    for bad in ("0", "-0.0", "nan", "inf", "10.000001"):
        with pytest.raises(ValueError):
            lr.parse(bad)


# ------------------------------------------------------------------------------------------------------ presets

def preset_with(tmp_path, change):
    preset = repro.load_preset("demo")
    change(preset)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(preset))
    return path


def test_deeply_nested_preset_is_refused(capsys, tmp_path):
    for levels in (MAX_DEPTH + 1, 5000, 200_000):  # past the schema's depth, past Python's JSON reader
        (tmp_path / "deep.json").write_text("[" * levels + "]" * levels)
        fails_cli(capsys, "repro", "--out", tmp_path / "o", "--preset", tmp_path / "deep.json", says="nested deeper")
        fails_cli(capsys, "train-m1", "--out", tmp_path / "o" / "m1.npz", "--preset", tmp_path / "deep.json",
                  says="nested deeper")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("key", ["m1.seq_len", "datasets.seq_len", "m1.batch_size"])
def test_preset_too_big_for_memory_is_refused_before_work(capsys, tmp_path, key):
    section, name = key.split(".")
    path = preset_with(tmp_path, lambda p: p[section].__setitem__(name, 1 << 16))
    err = fails_cli(capsys, "repro", "--out", tmp_path / "o", "--preset", path, says="GiB")
    assert key in err
    assert not (tmp_path / "o").exists()


def test_memory_estimate_counts_the_attention_buffer():
    """Quadrupling T at least quadruples the estimate once attention dominates (it grows as T^2), and the estimate
    of M1 at T = 65,536 is at least the B*H*T*T float32 buffer fast/cpu allocates."""
    small = memory.step_bytes("3m", 16, 4096, 257)
    large = memory.step_bytes("3m", 16, 4 * 4096, 257)
    assert large > 12 * small
    assert memory.step_bytes("3m", 16, 1 << 16, 257) >= 16 * 4 * (1 << 16) ** 2 * 4


def test_shipped_presets_fit():
    for name in ("demo", "cpu"):
        assert memory.check(repro.load_preset(name), available=8 << 30) is None
