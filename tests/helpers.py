"""What several test files share: test models and inputs, expected errors, and independent oracles.

The oracles (exact_final_interval, cell_inside, ideal_bits) call none of the code under test: they redo the
arithmetic with Python integers and mpmath.
"""
import contextlib
import hashlib

import mpmath
import numpy as np

from equalinfo.ref.arithmetic import STATE_BITS
from equalinfo.ref.equalinfo import WindowError
from equalinfo.ref.symbols import BOS, EOS, N_SYMBOLS, bytes_to_symbols, documents_to_symbols

class AdversarialModel:
    """A finite-context model whose rows are extreme but deterministic functions of the context.

    style "skewed": one symbol takes almost all mass (the rest get the 2^-p floor after quantisation);
    style "dyadic": probabilities are powers of two (boundaries land on coarse dyadic grids);
    style "dirichlet": random rows with a small concentration (a few large symbols, many tiny ones);
    style "mixed": one of the above per context.
    """

    kind = "adversarial"

    def __init__(self, style="mixed", context_length=2, seed=0):
        self.style, self.context_length, self.seed = style, context_length, seed

    def _row(self, context):
        key = hashlib.sha256(repr((self.seed, tuple(int(c) for c in context))).encode()).digest()
        rng = np.random.default_rng(int.from_bytes(key[:8], "little"))
        style = self.style if self.style != "mixed" else ["skewed", "dyadic", "dirichlet"][rng.integers(3)]
        if style == "skewed":
            row = np.full(N_SYMBOLS, 1e-9)
            row[rng.integers(N_SYMBOLS)] = 1.0
        elif style == "dyadic":
            row = np.zeros(N_SYMBOLS)
            chosen = rng.choice(N_SYMBOLS, size=8, replace=False)
            row[chosen] = 2.0 ** -np.arange(1, 9)
            row[chosen[-1]] *= 2  # make the chosen ones sum to exactly 1
        else:
            row = rng.dirichlet(np.full(N_SYMBOLS, 0.05))
        return row

    def next_probs(self, inputs):
        inputs = np.asarray(inputs, dtype=np.int64)
        out = np.zeros(inputs.shape + (N_SYMBOLS,))
        width = self.context_length
        for b in range(inputs.shape[0]):
            padded = [BOS] * width + list(inputs[b])
            for t in range(inputs.shape[1]):
                out[b, t] = self._row(padded[t + 1:t + 1 + width])
        return out

    def sample(self, n, seed):
        """A sequence drawn from the model itself (the texts it finds most typical)."""
        rng = np.random.default_rng(seed)
        history, out = [BOS], []
        for _ in range(n):
            row = self._row(([BOS] * self.context_length + history)[-self.context_length:])
            symbol = int(rng.choice(N_SYMBOLS, p=row / row.sum()))
            out.append(symbol)
            history.append(symbol)
        return np.array(out, dtype=np.int64)

    def arrays(self):
        return {"seed": np.array([self.seed, self.context_length])}


def exact_final_interval(cdfs, symbols, precision):
    """The coder's final interval [L, L + W) / 2^N, recomputed with unbounded integers and no bit output.

    It applies the documented update (child = [floor(W c_s / 2^p), floor(W c_{s+1} / 2^p)) of the current width W,
    doubling W while W <= 2^(STATE_BITS-1)) but keeps the whole interval as big integers, so it shares no code
    with the encoder's emission, carry or termination logic.
    """
    low, width, scale = 0, 1 << STATE_BITS, STATE_BITS
    for cdf, symbol in zip(cdfs, symbols):
        lo = (width * int(cdf[symbol])) >> precision
        hi = (width * int(cdf[symbol + 1])) >> precision
        low, width = low + lo, hi - lo
        while width <= 1 << (STATE_BITS - 1):
            low, width, scale = low * 2, width * 2, scale + 1
    return low, width, scale


def cell_inside(bits, low, width, scale):
    """True if the dyadic cell named by `bits` lies inside [low, low + width) / 2^scale."""
    value = int("".join(map(str, bits)) or "0", 2)
    shift = scale - len(bits)
    if shift < 0:  # the cell is finer than the interval's unit: compare on the cell's grid instead
        low, width, shift, value = low << -shift, width << -shift, 0, value
    start, size = value << shift, 1 << shift
    return low <= start and start + size <= low + width


def ideal_bits(cdfs, symbols, precision):
    """-sum log2 p of the quantized probabilities, with mpmath at 50 digits."""
    with mpmath.workdps(50):
        total = mpmath.mpf(0)
        for cdf, symbol in zip(cdfs, symbols):
            total -= mpmath.log(mpmath.mpf(int(cdf[symbol + 1]) - int(cdf[symbol])) / (1 << precision), 2)
        return total


def english_text(n_bytes):
    """n_bytes of real English text that ships with Python (the pydoc help topics), deterministic."""
    import pydoc_data.topics

    text = "\n\n".join(pydoc_data.topics.topics[key] for key in sorted(pydoc_data.topics.topics)).encode("utf-8")
    assert len(text) >= n_bytes, "this Python's help topics are too short"
    return text[:n_bytes]


WINDOW_SIZES = [16, 24, 32, 64, 128]  # the Equal-Info window sizes the coding tests run (the paper's 16-128, and 24)


def simple_models():
    """(training symbols, {"unigram", "markov2"}): the models fitted on 60 KB of English that the coder tests use."""
    from equalinfo.ref.models import MarkovModel, UnigramModel

    training = bytes_to_symbols(english_text(60_000))
    return training, {"unigram": UnigramModel.fit(training), "markov2": MarkovModel.fit(training, 2)}


def unseen_text():
    """3,000 symbols of English the simple models were not fitted on."""
    return bytes_to_symbols(english_text(64_000)[61_000:])


def symbol_cases(n_random=600):
    """Named symbol sequences every coder must round-trip: edge cases, EOS, random bytes, UTF-8 and unseen text."""
    rng = np.random.default_rng(0)
    return {
        "empty": np.zeros(0, dtype=np.int64),
        "one symbol": np.array([65]),
        "one EOS": np.array([EOS]),
        "EOS only": np.array([EOS, EOS, EOS]),
        "every byte value": np.arange(256),
        "EOS inside text": documents_to_symbols(["first doc", "", "third doc ünïcödé", "x" * 40]),
        "random bytes": rng.integers(0, 256, n_random),
        "utf-8 text": bytes_to_symbols("Ἐν ἀρχῇ ἦν ὁ λόγος — 日本語 — 🙂\n".encode("utf-8") * 6),
        "unseen text": unseen_text(),
    }


def assert_equalinfo_input_errors(equalinfo_module, model):
    """The errors an Equal-Info implementation (ref.equalinfo or a fast twin) must raise on bad input, ref's."""
    import pytest

    with pytest.raises(WindowError, match=">= precision"):
        equalinfo_module.compress(np.array([1, 2]), model, window_bits=12, precision=14)
    with pytest.raises(ValueError, match="outside 0..256"):
        equalinfo_module.compress(np.array([1, 300]), model)
    bits = equalinfo_module.compress(bytes_to_symbols(b"hello, hello, hello world"), model, 16)
    with pytest.raises(WindowError, match="whole number"):
        equalinfo_module.decompress(bits[:-3], model, 16)
    with pytest.raises(WindowError, match="expected 999"):
        equalinfo_module.decompress(bits, model, 16, n_symbols=999)
    with pytest.raises(WindowError, match="past the 2 symbols"):
        equalinfo_module.decompress(bits, model, 16, n_symbols=2)


def perturbed_params(cfg, seed):
    """Random Transformer params with norms and relative biases moved off their init so every path carries signal."""
    from equalinfo.ref import transformer as tr

    rng = np.random.default_rng(seed + 1000)
    params = tr.init_params(cfg, seed)
    for name in params:
        if name.endswith("norm"):
            params[name] = (params[name] + 0.3 * rng.standard_normal(params[name].shape)).astype(cfg.dtype)
        if name.endswith("rel_bias"):
            params[name] = rng.standard_normal(params[name].shape).astype(cfg.dtype)
    return params


def m1_params(cfg, seed):
    """Random M1 params whose norms and relative biases are 1 + noise, so that every parameter matters."""
    from equalinfo.ref import transformer as tr

    params = tr.init_params(cfg, seed)
    rng = np.random.default_rng(seed + 1)
    for name in params:
        if name.endswith("norm") or name.endswith("rel_bias"):
            params[name] = (1.0 + rng.normal(size=params[name].shape)).astype(cfg.dtype)
    return params


def rel_err(got, want):
    """max |got - want| / max |want| over a tensor (0 for two all-zero tensors)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.abs(want).max()
    return float(np.abs(got - want).max() / scale) if scale > 0 else float(np.abs(got).max())


def training_batch(cfg, seed, B, T, padded):
    """Inputs, targets and weights; padded batches have fractional weights, trailing zeros and target -1 there."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, cfg.vocab_in, (B, T))
    targets = rng.integers(0, cfg.vocab_out, (B, T))
    if not padded:
        return inputs, targets, None
    weights = rng.uniform(0.2, 2.0, (B, T))
    for b in range(B):
        weights[b, max(1, T - 3 - 5 * b):] = 0.0
    return inputs, np.where(weights == 0, -1, targets), weights


def assert_cpu_windows_are_refs(cpu_model, ref_model, texts=(b"To be, or not to be", b"that is the question:", b"")):
    """Equal-Info b=16 windows compressed by fast.cpu (lockstep, M1's cached grower) are ref's bits, decode with
    ref's coder and rows, and fast.cpu decodes them back: an exact rule's twins agree through the whole coder."""
    from equalinfo.fast.cpu import equalinfo as fast_ei
    from equalinfo.ref import equalinfo

    texts = [bytes_to_symbols(t) for t in texts]
    bits = fast_ei.compress_batch(texts, cpu_model, 16)
    for text, coded in zip(texts, bits):
        assert np.array_equal(coded, equalinfo.compress(text, ref_model, 16))
        assert np.array_equal(equalinfo.decompress(coded, ref_model, 16, n_symbols=len(text)), text)
    decoded = fast_ei.decompress_batch(bits, cpu_model, 16, n_symbols=[len(t) for t in texts])
    assert all(np.array_equal(d, t) for d, t in zip(decoded, texts))
    return texts


def m1_inputs(shape, seed=2):
    """Random M1 inputs [B, T] that start with BOS, as every coded window does."""
    inputs = np.random.default_rng(seed).integers(0, N_SYMBOLS, shape)
    inputs[:, 0] = BOS
    return inputs


OPTIMIZERS = {  # name -> function of an optim module giving an optimizer: every update path of both optimizers
    "adafactor": lambda m: m.Adafactor(base_lr=0.1, warmup_steps=10),  # 32x48 matrices unfactored
    "adafactor_factored": lambda m: m.Adafactor(base_lr=0.1, warmup_steps=10, min_dim_size_to_factor=16),
    "adafactor_clipped": lambda m: m.Adafactor(base_lr=0.1, warmup_steps=3, min_dim_size_to_factor=16, clip_norm=0.5),
    "adamw": lambda m: m.AdamW(peak_lr=1e-2, warmup_steps=5, total_steps=40),  # clip_norm 1.0 binds at the start
}


def optimizer_trajectory(model, optim_module, make_opt, dtype, steps=10, place=lambda arrays: arrays):
    """Ten steps on a fixed learnable batch with padding: (losses, params, state) as the backend returns them.

    model / optim_module: a backend's transformer and optim modules; make_opt(optim_module) -> an optimizer;
    place(params) puts the initial params where the backend keeps them (a GPU backend's to_device)."""
    from equalinfo.ref import transformer as tr

    cfg = tr.Config(vocab_in=12, vocab_out=10, d_model=32, n_heads=4, n_layers=2, d_ff=48, dtype=dtype)
    params = place(tr.init_params(cfg, 0))
    rng = np.random.default_rng(4)
    inputs = rng.integers(0, 12, (4, 24))
    targets = (inputs[:, ::-1] * 7 + 3) % 10  # learnable given the inputs
    weights = np.ones(inputs.shape)
    weights[1, 18:] = 0.0
    targets = np.where(weights == 0, -1, targets)
    opt = make_opt(optim_module)
    state = opt.init(params)
    losses = []
    for step in range(steps):
        loss, grads = model.loss_and_grads(params, cfg, inputs, targets, weights)
        losses.append(loss)
        params, state = opt.update(params, grads, state, step)
    return np.array(losses), params, state


def run_cli(capsys, *argv, within=None):
    """(exit status, stdout, stderr) of the `equalinfo` command line run in-process on argv; `within`: a context
    manager to run it in (tests/limits.py's `bounded` caps its memory and time)."""
    from equalinfo import cli

    with within or contextlib.nullcontext():
        try:
            status = cli.main([str(arg) for arg in argv])
        except SystemExit as exit_:
            status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def fails_cli(capsys, *argv, says, within=None):
    """Run a command that must fail cleanly: status 2, one error line on stderr containing `says`, no traceback."""
    status, out, err = run_cli(capsys, *argv, within=within)
    assert status == 2, (status, err)
    assert err.startswith("equalinfo: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and says in err, err
    return err


def levenshtein(a, b):
    """Edit distance of two sequences (insert, delete, substitute: cost 1 each), the textbook dynamic programme."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]
