"""Family `windows`: plain AC and Equal-Info windows with a small Markov model (its arrays included).

One order-1 Markov model, fitted on TRAINING_TEXT (ref.models.MarkovModel), codes SAMPLE (other text, with EOS
between documents and multi-byte UTF-8) as plain AC and as Equal-Info windows of b = 16, 24, 32, 64 and 128 bits
(precision 14), and as windows of 16 bits at precision 16. Each vector gives the bits, the symbols of each window,
the greedy count (how many would have fit), whether the window delimits itself, and so which windows ended early
(fewer symbols than greedy: no b-bit cell of the greedy interval marks a boundary).
"""
import numpy as np

NAME = "windows"
TRAINING_TEXT = (
    "Arithmetic coding turns a model's predictions into bits. A window of equal information holds as much text as "
    "fits in a fixed number of bits, and every window starts the model afresh, so each one decodes alone. The "
    "decoder reads a window's bits and stops where its cell straddles the boundary between two next symbols. "
    "Short, common words cost few bits; rare letters, digits like 0123456789 and punctuation cost more. "
)
SAMPLE = ("The model starts afresh at every window, so the windows decode alone.\x00Rare letters cost more: "
          "zebra, quixotic, jinx.\x00Caf\u00e9 na\u00efve \u2014 digits 42 and 1998.")
ORDER = 1
SKEWED_TRAINING = b"ab" * 3000 + b"abc"  # a model that is almost sure of every next symbol
# (model, sample, method, window_bits, precision); the skewed samples are chosen so that windows end early
SETTINGS = ([("text", "sample", "ac", None, 14)]
            + [("text", "sample", "equalinfo", b, 14) for b in (16, 24, 32, 64, 128)]
            + [("text", "sample", "equalinfo", 16, 16), ("skewed", (248, 130), "ac", None, 14)]
            + [("skewed", sample, "equalinfo", b, 14)
               for b, sample in ((16, (248, 130)), (24, (396, 20)), (32, (322, 20)), (64, (359, 20)),
                                 (128, (248, 130)))])


def models():
    """name -> the family's Markov models, fitted on their training texts."""
    from equalinfo.ref.models import MarkovModel
    from equalinfo.ref.symbols import bytes_to_symbols

    return {"text": MarkovModel.fit(bytes_to_symbols(TRAINING_TEXT.encode("utf-8")), ORDER),
            "skewed": MarkovModel.fit(bytes_to_symbols(SKEWED_TRAINING), ORDER)}


def sample_symbols(sample):
    from equalinfo.ref.symbols import bytes_to_symbols, documents_to_symbols

    if sample == "sample":
        return documents_to_symbols(SAMPLE.split("\x00"))
    first, second = sample
    return bytes_to_symbols(b"ab" * first + b"c" + b"ab" * second + b"ca" + b"ba" * second)


def build():
    from equalinfo.ref import ac, equalinfo

    fitted = models()
    arrays = {}
    for name, model in fitted.items():
        arrays[f"model.{name}.context_ids"], arrays[f"model.{name}.counts"] = model.context_ids, model.counts
    vectors = []
    for number, (model_name, sample, method, window_bits, precision) in enumerate(SETTINGS):
        key = f"{number:03d}"
        model, symbols = fitted[model_name], sample_symbols(sample)
        vector = {"id": key, "model": model_name, "method": method, "window_bits": window_bits,
                  "precision": precision, "n_symbols": int(len(symbols))}
        if method == "ac":
            bits = ac.compress(symbols, model, precision)
        else:
            windows = equalinfo.encode_windows(symbols, model, window_bits, precision)
            bits = np.concatenate([w.bits for w in windows])
            vector.update({
                "n_windows": len(windows),
                "window_lengths": [w.length for w in windows],
                "greedy_lengths": [w.greedy_length for w in windows],
                "delimited": [int(w.delimited) for w in windows],
                "ended_early": [i for i, w in enumerate(windows) if w.length < w.greedy_length],
            })
        vector["n_bits"] = int(len(bits))
        arrays[f"symbols.{key}"], arrays[f"bits.{key}"] = symbols, bits
        vectors.append(vector)
    description = {
        "family": NAME,
        "models": {name: {"kind": "markov", "order": ORDER} for name in fitted},
        "model_rule": "p(s | c) = (counts[c, s] + 1) / (sum_s' counts[c, s'] + 257) in float64 for a stored "
                      "context c, 1/257 for every s otherwise; c = the previous input id (257 = BOS)",
        "arrays": {"model.NAME.context_ids": "<i8 [n_ctx] increasing context ids",
                   "model.NAME.counts": "<i8 [n_ctx, 257]",
                   "symbols.ID": "<i8 [n] the coded sequence (bytes 0-255, EOS 256)",
                   "bits.ID": "|u1 [n_bits] the vector's bits (Equal-Info: n_windows * window_bits)"},
        "vectors": vectors,
    }
    return description, arrays


def model_from(arrays, name):
    from equalinfo.ref.models import MarkovModel

    return MarkovModel(ORDER, arrays[f"model.{name}.context_ids"], arrays[f"model.{name}.counts"])


def check(description, arrays, impl, tally):
    fitted = {name: model_from(arrays, name) for name in description["models"]}
    for vector in description["vectors"]:
        key = vector["id"]
        check_vector(vector, arrays[f"bits.{key}"], arrays[f"symbols.{key}"], fitted[vector["model"]], impl, tally,
                     f"vector {key} ({vector['model']} model)")


def check_vector(vector, bits, symbols, model, impl, tally, label):
    """Encode and decode one vector (plain AC or Equal-Info) with the backend; shared with the M1 families."""
    precision, n_symbols = vector["precision"], vector["n_symbols"]
    if vector["method"] == "ac":
        where = f"{label} (ac, precision {precision})"
        got = tally.call(where, "ac.compress", impl.ac.compress, symbols, model, precision)
        if got is not None:
            tally.same(got, bits, where, "bits")
        got = tally.call(where, "ac.decompress", impl.ac.decompress, bits, model, n_symbols, precision)
        if got is not None:
            tally.same(got, symbols, where, "decoded symbols")
        return
    window_bits = vector["window_bits"]
    where = f"{label} (equalinfo b={window_bits}, precision {precision})"
    windows = tally.call(where, "encode_windows", impl.equalinfo.encode_windows, symbols, model, window_bits,
                         precision)
    if windows is not None:
        tally.same([w.length for w in windows], vector["window_lengths"], where, "symbols per window")
        tally.same([w.greedy_length for w in windows], vector["greedy_lengths"], where, "greedy symbols per window")
        tally.same([int(w.delimited) for w in windows], vector["delimited"], where, "delimited flags")
        tally.same(np.concatenate([w.bits for w in windows]), bits, where, "window bits")
    got = tally.call(where, "equalinfo.compress", impl.equalinfo.compress, symbols, model, window_bits, precision)
    if got is not None:
        tally.same(got, bits, where, "compress bits")
    got = tally.call(where, "equalinfo.decompress", impl.equalinfo.decompress, bits, model, window_bits, precision,
                     n_symbols)
    if got is not None:
        tally.same(got, symbols, where, "decoded symbols")
    start = 0  # every delimited window decodes alone from its b bits, without a count
    for index, (length, delimited) in enumerate(zip(vector["window_lengths"], vector["delimited"])):
        if delimited:
            alone = bits[index * window_bits:(index + 1) * window_bits]
            got = tally.call(where, f"window {index} alone", impl.equalinfo.decompress, alone, model, window_bits,
                             precision)
            if got is not None:
                tally.same(got, symbols[start:start + length], where, f"window {index} decoded alone")
        start += length


# --------------------------------------------------------------- the --implementation protocol (protocol.py)

WINDOW_ANSWERS = ("window_lengths", "greedy_lengths", "delimited")  # per-window lists an encoder answers
NOT_ASKED = WINDOW_ANSWERS + ("ended_early",)  # vector fields left out of a request (ended_early follows from them)


def request(description, arrays):
    """(description, arrays, expected): the vectors without their per-window answers; bits.ID stays (decoding
    reads it). Answers per vector ID: compress.ID, decompress.ID and, for windows, the lists of WINDOW_ANSWERS."""
    asked = dict(description, vectors=[vector_request(vector) for vector in description["vectors"]])
    expected = {}
    for vector in description["vectors"]:
        key = vector["id"]
        expected.update(vector_expected(vector, arrays[f"bits.{key}"], arrays[f"symbols.{key}"]))
    return asked, arrays, expected


def answer(description, arrays, impl):
    fitted = {name: model_from(arrays, name) for name in description["models"]}
    answers = {}
    for vector in description["vectors"]:
        key = vector["id"]
        answers.update(vector_answers(vector, arrays[f"bits.{key}"], arrays[f"symbols.{key}"],
                                      fitted[vector["model"]], impl))
    return answers


def vector_request(vector):
    """One vector's JSON as a request holds it; shared with the M1 families."""
    return {field: value for field, value in vector.items() if field not in NOT_ASKED}


def vector_expected(vector, bits, symbols):
    """{answer key: expected value} of one vector (plain AC or Equal-Info); shared with the M1 families."""
    key = vector["id"]
    expected = {f"compress.{key}": bits, f"decompress.{key}": symbols}
    if vector["method"] == "equalinfo":
        expected.update({f"{field}.{key}": np.array(vector[field]) for field in WINDOW_ANSWERS})
    return expected


def vector_answers(vector, bits, symbols, model, impl):
    """The backend's answers to one vector: the bits it codes, the symbols it decodes, its windows."""
    key, precision, n_symbols = vector["id"], vector["precision"], vector["n_symbols"]
    if vector["method"] == "ac":
        return {f"compress.{key}": impl.ac.compress(symbols, model, precision),
                f"decompress.{key}": impl.ac.decompress(bits, model, n_symbols, precision)}
    window_bits = vector["window_bits"]
    windows = impl.equalinfo.encode_windows(symbols, model, window_bits, precision)
    return {f"compress.{key}": impl.equalinfo.compress(symbols, model, window_bits, precision),
            f"decompress.{key}": impl.equalinfo.decompress(bits, model, window_bits, precision, n_symbols),
            f"window_lengths.{key}": [w.length for w in windows],
            f"greedy_lengths.{key}": [w.greedy_length for w in windows],
            f"delimited.{key}": [int(w.delimited) for w in windows]}
