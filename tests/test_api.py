"""The Python API (api.py, `equalinfo.compress` ...): the CLI's files byte for byte, one default model, M1."""
import io

import numpy as np
import pytest

import equalinfo
from helpers import english_text, run_cli
from test_m1_files import save_m1
from equalinfo.ref.models import MarkovModel, UnigramModel
from equalinfo.ref.symbols import bytes_to_symbols
from equalinfo.filetool import codec, fileformat

TEXT = english_text(3000)
RANDOM = np.random.default_rng(7).integers(0, 256, 500, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("data, options, kwargs", [  # the default M1 on text: tests/test_default_model.py
    (TEXT, ["--model", "fitted"], {"model": "fitted"}),
    (TEXT, ["--method", "ac", "--model", "fitted"], {"method": "ac", "model": "fitted"}),
    (TEXT, ["--window-bits", "32", "--precision", "16", "--model", "fitted"],
     {"window_bits": 32, "precision": 16, "model": "fitted"}),
    (TEXT, ["--method", "staticac"], {"method": "staticac"}),
    (TEXT, ["--method", "gzip"], {"method": "gzip"}),
    (RANDOM, [], {}),  # stored: coding would not shrink it
])
def test_the_api_and_the_cli_write_identical_files(capsys, tmp_path, data, options, kwargs):
    source, target = tmp_path / "in", tmp_path / "out.eqi"
    source.write_bytes(data)
    status, _, err = run_cli(capsys, "compress", source, target, *options)
    assert status == 0, err
    blob = equalinfo.compress(data, **kwargs)
    assert target.read_bytes() == blob
    assert equalinfo.decompress(blob) == data


def test_a_model_file_gives_the_same_file_from_the_api_and_the_cli(capsys, tmp_path):
    (tmp_path / "train").write_bytes(TEXT[1000:])
    (tmp_path / "in").write_bytes(TEXT[:1000])
    assert run_cli(capsys, "fit-model", tmp_path / "train", tmp_path / "m.npz")[0] == 0
    assert run_cli(capsys, "compress", tmp_path / "in", tmp_path / "out", "--model", tmp_path / "m.npz")[0] == 0
    model = fileformat.load_model_file(tmp_path / "m.npz")
    blob = equalinfo.compress(TEXT[:1000], model)
    assert (tmp_path / "out").read_bytes() == blob and fileformat.unpack(blob).header.model_length == 0
    assert equalinfo.decompress(blob, model) == TEXT[:1000]
    with pytest.raises(equalinfo.FormatError) as caught:
        equalinfo.decompress(blob)
    assert caught.value.cause == "missing-model"


def test_model_none_resolves_through_codec_default_model(capsys, tmp_path, monkeypatch):
    """The one place that says what the default is (the shipped M1 for text): the API, the CLI and the stream
    coder all follow it."""
    asked = []

    def unigram_default(sample):
        asked.append(len(sample))
        return UnigramModel.fit(bytes_to_symbols(TEXT)), False

    monkeypatch.setattr(codec, "default_model", unigram_default)
    (tmp_path / "in").write_bytes(TEXT)
    assert run_cli(capsys, "compress", tmp_path / "in", tmp_path / "out")[0] == 0
    blob = equalinfo.compress(TEXT)
    streamed = io.BytesIO()
    equalinfo.compress_stream(io.BytesIO(TEXT), streamed)
    assert (tmp_path / "out").read_bytes() == blob == streamed.getvalue() and len(asked) == 3
    header = equalinfo.info(blob)
    assert header.model_kind == "unigram" and header.model_length == 0  # not embedded, as default_model said


def test_compress_stream_with_model_fitted_equals_compress_within_one_batch():
    """A model name resolves on the stream's first batch as compress resolves it on the whole input (model=None,
    the shipped M1 on text: tests/test_default_model.py)."""
    out = io.BytesIO()
    equalinfo.compress_stream(io.BytesIO(TEXT), out, "fitted")
    assert out.getvalue() == equalinfo.compress(TEXT, "fitted", store=False)
    back = io.BytesIO()
    equalinfo.decompress_stream(io.BytesIO(out.getvalue()), back)
    assert back.getvalue() == TEXT


def test_load_m1_codes_segments_in_lockstep_with_refs_bits(tmp_path):
    """M1 (exact rule 2) over 4 segments: fast.cpu codes them as one batch, ref one after the other; same file."""
    path = save_m1(tmp_path / "m1.npz")
    data = TEXT[:200]
    files = {name: equalinfo.compress(data, equalinfo.load_m1(path, backend=name), backend=name, store=False,
                                      segment_bytes=64) for name in ("ref", "cpu")}
    assert files["ref"] == files["cpu"] and len(fileformat.unpack(files["cpu"]).segments.entries) == 4
    assert equalinfo.decompress(files["cpu"], equalinfo.load_m1(path), backend="cpu") == data
    with pytest.raises(equalinfo.FormatError) as caught:
        equalinfo.decompress(files["cpu"], MarkovModel.fit(bytes_to_symbols(data), 1))
    assert caught.value.cause == "wrong-model"


def test_a_stored_file_decodes_with_the_model_it_was_given():
    """compress falls back to stored on random bytes; the model passed to both calls must still round-trip."""
    model = MarkovModel.fit(bytes_to_symbols(TEXT), 2)
    blob = equalinfo.compress(RANDOM, model)
    assert equalinfo.info(blob).method == "stored" and equalinfo.decompress(blob, model) == RANDOM


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown method"):
        equalinfo.compress(TEXT, method="zip")
    with pytest.raises(ValueError, match="segment_bytes"):
        equalinfo.compress(TEXT, "fitted", segment_bytes=0)
    with pytest.raises(equalinfo.FormatError) as caught:
        equalinfo.decompress(b"not a file at all")
    assert caught.value.cause == "not-equalinfo"
    with pytest.raises(AttributeError):
        equalinfo.no_such_function
