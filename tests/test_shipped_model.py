"""The shipped M1 (filetool/shipped_model.py): it loads, it is the model README names, and `equalinfo compress`
codes with it under `--model shipped`, and `decompress` finds it without --model. Inputs are small: M1 codes slowly."""
from pathlib import Path

import pytest

from helpers import fails_cli, run_cli
from equalinfo.filetool import fileformat, shipped_model
from equalinfo.ref.fingerprint import fingerprint
from equalinfo.ref.m1 import TransformerModel

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Romeo, Romeo, wherefore art thou Romeo? \u2014 a socket is an endpoint of a connection.\n".encode()


def test_the_shipped_model_loads_and_is_the_one_readme_names():
    model = shipped_model.load()
    assert isinstance(model, TransformerModel) and model.rule == shipped_model.RULE
    assert fingerprint(model.arrays()) == shipped_model.FINGERPRINT
    assert shipped_model.FINGERPRINT in (ROOT / "README.md").read_text(encoding="utf-8")
    assert shipped_model.PATH.stat().st_size <= 10_000_000


@pytest.mark.parametrize("method", ["equalinfo", "ac"])
def test_compress_codes_with_the_shipped_model_and_decompress_finds_it(capsys, tmp_path, method):
    (tmp_path / "t.txt").write_bytes(TEXT)
    assert run_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "t.eqi", "--method", method,
                   "--no-store", "--model", "shipped")[0] == 0
    header = fileformat.unpack((tmp_path / "t.eqi").read_bytes()).header
    rule = {"ac": 4, "equalinfo": 3}[method]  # shipped_model.rule_for: the rule whose price each method can afford
    assert shipped_model.rule_for(method) == rule
    assert (header.model_kind, header.fingerprint, header.model_length) == ("transformer",
                                                                            shipped_model.FINGERPRINTS[rule], 0)
    if method == "equalinfo":
        assert header.window_bits == shipped_model.WINDOW_BITS
    status, _, err = run_cli(capsys, "decompress", tmp_path / "t.eqi", tmp_path / "t.out")
    assert status == 0 and "the shipped M1" in err
    assert (tmp_path / "t.out").read_bytes() == TEXT


def test_a_replaced_shipped_model_is_refused(capsys, tmp_path, monkeypatch):
    """An install whose model file is not the one FINGERPRINT names fails with one line, not with other bits."""
    (tmp_path / "t.txt").write_bytes(TEXT)
    assert run_cli(capsys, "fit-model", tmp_path / "t.txt", tmp_path / "other.npz")[0] == 0
    monkeypatch.setattr(shipped_model, "PATH", tmp_path / "other.npz")
    shipped_model.cache_clear()
    try:
        fails_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "t.eqi", "--model", "shipped",
                  says="has fingerprint")
        monkeypatch.setattr(shipped_model, "PATH", tmp_path / "missing.npz")
        fails_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "t.eqi", "--model", "shipped",
                  says="is missing from this install")
    finally:
        shipped_model.cache_clear()


def test_files_coded_under_rule_3_still_decode_and_rule_4_is_the_default(capsys, tmp_path):
    """compress codes with the shipped weights under rule 4 now; a file written under rule 3 (every file compress
    wrote before) names the rule-3 fingerprint and decompress still finds the model for it, with rule 3's rows."""
    from equalinfo.filetool import codec

    assert shipped_model.load().rule == 4 and shipped_model.load(3).rule == 3 == shipped_model.FILE_RULE
    assert fingerprint(shipped_model.load(3).arrays()) == shipped_model.FILE_FINGERPRINT != shipped_model.FINGERPRINT
    old = codec.compress_bytes(TEXT, method="ac", model=shipped_model.load(3), embed=False)[0]
    (tmp_path / "old.eqi").write_bytes(old)
    assert fileformat.unpack(old).header.fingerprint == shipped_model.FILE_FINGERPRINT
    status, _, err = run_cli(capsys, "decompress", tmp_path / "old.eqi", tmp_path / "old.out")
    assert status == 0 and "the shipped M1" in err and (tmp_path / "old.out").read_bytes() == TEXT
    new = codec.compress_bytes(TEXT, method="ac", model=shipped_model.load(), embed=False)[0]
    assert new != old and fileformat.unpack(new).header.fingerprint == shipped_model.FINGERPRINT
    with pytest.raises(ValueError, match="rule 3, 4"):
        shipped_model.load(2)


def test_m1_rule_picks_the_shipped_models_rule_and_decompress_follows_the_file(capsys, tmp_path):
    """--m1-rule 3 or 4 overrides the per-method default for the shipped M1 (rule 4 for Equal-Info: faster, at the
    price bench/README.md states); decompress, with or without --model shipped, decodes by the rule the file
    names; other rules and --m1-context are refused with one line."""
    (tmp_path / "t.txt").write_bytes(TEXT)
    for rule, method in ((4, "equalinfo"), (3, "ac")):
        out = tmp_path / f"{method}.eqi"
        assert run_cli(capsys, "compress", tmp_path / "t.txt", out, "--method", method, "--no-store",
                       "--m1-rule", str(rule))[0] == 0
        assert fileformat.unpack(out.read_bytes()).header.fingerprint == shipped_model.FINGERPRINTS[rule]
        for extra in ((), ("--model", "shipped")):
            back = tmp_path / f"{method}{len(extra)}.out"
            assert run_cli(capsys, "decompress", out, back, *extra)[0] == 0 and back.read_bytes() == TEXT
    fails_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "x.eqi", "--m1-rule", "2", says="rule 3 or 4")
    fails_cli(capsys, "compress", tmp_path / "t.txt", tmp_path / "x.eqi", "--model", "shipped", "--m1-context", "9",
              says="--m1-context")
    fails_cli(capsys, "decompress", tmp_path / "ac.eqi", tmp_path / "x", "--model", "shipped", "--m1-rule", "4",
              says="names the rule")
    (tmp_path / "b.bin").write_bytes(bytes([0xFF, 0xFE]) * 40)  # not UTF-8: the fitted model, no M1 to rule
    fails_cli(capsys, "compress", tmp_path / "b.bin", tmp_path / "x.eqi", "--m1-rule", "4", says="not UTF-8")
    assert not (tmp_path / "x.eqi").exists()


def test_the_python_api_picks_the_rule_by_method_only_for_the_shipped_m1_by_name():
    import equalinfo

    by_name = equalinfo.compress(TEXT, "shipped", "equalinfo", store=False)
    given = equalinfo.compress(TEXT, shipped_model.load(4), "equalinfo", store=False)
    assert fileformat.unpack(by_name).header.fingerprint == shipped_model.FINGERPRINTS[3]
    assert fileformat.unpack(given).header.fingerprint == shipped_model.FINGERPRINTS[4]  # an object keeps its rule
    assert equalinfo.decompress(given) == TEXT
