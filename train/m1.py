"""Training M1, the byte-level model that drives the coder.

Batches: sequence k of step s starts at a random offset of the training symbol stream (drawn from
np.random.default_rng([seed, s]), so a step's batch never depends on what ran before) and reads
[BOS, x_o, ..., x_{o+T-2}] -> [x_o, ..., x_{o+T-1}]. Starting every sequence with BOS at an arbitrary point of the
text is what M1 meets when coding: every Equal-Info window restarts it from BOS in the middle of a document.
Validation: the validation stream cut into consecutive sequences of the same shape; bits/byte = mean NLL / ln 2
per symbol (EOS counts as a symbol, as it is coded).
"""
import math
import zipfile

import numpy as np

from equalinfo.ref import int8_m1, integer_m1, transformer
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.symbols import BOS, N_INPUTS, N_SYMBOLS
from equalinfo.train import backends, checkpoint
from equalinfo.train.trainer import TrainSettings, load_checkpoint, train


def make_config(size="3m", dtype="float32", **overrides):
    """M1's config: a named size (ref.transformer.SIZES) with M1's vocabularies (258 in, 257 out)."""
    return transformer.make_config(size, vocab_in=N_INPUTS, vocab_out=N_SYMBOLS, dtype=dtype, **overrides)


def stream_batch(symbols, seq_len, batch_size, seed, step):
    """(inputs, targets, weights) [B, T] of BOS-started sequences at random offsets of `symbols`."""
    if len(symbols) < seq_len:
        raise ValueError(f"the training text ({len(symbols)} symbols) is shorter than one sequence ({seq_len})")
    rng = np.random.default_rng([seed, step])
    offsets = rng.integers(0, len(symbols) - seq_len + 1, size=batch_size)
    targets = symbols[offsets[:, None] + np.arange(seq_len)]  # [B, T]
    inputs = np.concatenate([np.full((batch_size, 1), BOS), targets[:, :-1]], axis=1)
    return inputs.astype(np.int64), targets.astype(np.int64), np.ones((batch_size, seq_len))


def validation_batches(symbols, seq_len, batch_size, max_sequences):
    """Consecutive BOS-started sequences of the validation stream, batched (the last sequence may be shorter and
    is padded with weight 0)."""
    n = min(max_sequences, math.ceil(len(symbols) / seq_len))
    batches = []
    for first in range(0, n, batch_size):
        rows = range(first, min(first + batch_size, n))
        targets = np.zeros((len(rows), seq_len), dtype=np.int64)
        weights = np.zeros((len(rows), seq_len))
        for r, index in enumerate(rows):
            piece = symbols[index * seq_len:(index + 1) * seq_len]
            targets[r, :len(piece)], weights[r, :len(piece)] = piece, 1.0
        inputs = np.concatenate([np.full((len(rows), 1), BOS), targets[:, :-1]], axis=1)
        batches.append((inputs, targets, weights))
    return batches


def train_m1(train_symbols, val_symbols, out_path, backend, cfg, settings, seq_len=256, batch_size=16,
             eval_sequences=64, resume=False):
    """Train M1 on symbol streams; writes the checkpoint to out_path and returns (params, history)."""
    if not isinstance(settings, TrainSettings):
        settings = TrainSettings(**settings)
    train_symbols = np.asarray(train_symbols, dtype=np.int64)
    params = backend.transformer.init_params(cfg, settings.seed)
    return train(
        cfg, params, settings, backend,
        batch_at=lambda step: stream_batch(train_symbols, seq_len, batch_size, settings.seed, step),
        eval_batches=validation_batches(np.asarray(val_symbols, dtype=np.int64), seq_len, batch_size,
                                        eval_sequences),
        checkpoint_path=out_path, resume=resume,
        describe=lambda nll: {"val_bits_per_byte": nll / math.log(2)}, desc="train M1", role="m1",
        extra_meta={"seq_len": int(seq_len)})


# rule -> its weights from float ones (rule 4 reads rule 3's int8 arrays)
QUANTIZERS = {2: integer_m1.quantize_params, 3: int8_m1.quantize_params, 4: int8_m1.quantize_params}


def coding_model(params, cfg, backend_name, rule=1, restart_every=None):
    """M1 as a coding model (ref.m1.TransformerModel) whose rows come from the backend's twin of exact rule `rule`
    (train.backends.exact_rule; fast.cpu's decoders add its key/value-cached grower, fast/cpu/m1.py).
    params: the trained float parameters; rules 2-4 quantize them (QUANTIZERS: per-channel int16 or int8
    weights, no calibration data needed). restart_every: ref.m1.TransformerModel's (None: M1 reads the whole
    prefix, as within Equal-Info windows)."""
    if rule in QUANTIZERS:
        params = QUANTIZERS[rule](params, cfg)
    rows = backends.exact_rule(rule, backend_name).next_probs
    return TransformerModel(params, cfg, rows=rows, rule=rule, restart_every=restart_every)


def check_context(context, trained_seq_len, what="M1"):
    """Refuse to code with M1 over contexts longer than the sequences it was trained on.

    M1 learned BOS-started sequences of trained_seq_len symbols; its relative-position buckets and everything it
    learned about long contexts stop there, so beyond it M1 extrapolates and codes worse (the demo measured 3.88 vs
    3.66 bits/byte for AC over 1,024-symbol examples with M1 trained on 128). context None means "the whole
    input", which is longer than any training sequence. A control that measures this on purpose builds its model
    with coding_model directly."""
    if context is None or context > trained_seq_len:
        raise ValueError(f"{what} would code {'whole inputs' if context is None else f'{context}-symbol contexts'} "
                         f"but was trained on {trained_seq_len}-symbol sequences: restart it every "
                         f"{trained_seq_len} symbols or fewer (restart_every), or train it on longer sequences")
    return context


def on_backend(model, backend_name):
    """The same M1 (same arrays and rule, hence the same bits) with rows from the backend's twin of its rule: the
    model itself if they already are, else a copy pointed at them (nothing is rebuilt or checked again)."""
    rows = backends.exact_rule(model.rule, backend_name).next_probs
    return model if model.rows is rows else model.with_rows(rows)


def is_checkpoint(path):
    """True if path is an equalinfo training checkpoint (an .npz with a checkpoint header), not a model file."""
    try:
        with zipfile.ZipFile(path) as archive:
            return checkpoint.HEADER + ".npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def trained_context(meta):
    """The sequence length an M1 checkpoint was trained on (train_m1 records it), or None for older ones."""
    value = meta.get("seq_len") if isinstance(meta, dict) else None
    return value if isinstance(value, int) and value > 0 else None


def coding_model_from_checkpoint(path, backend_name, rule=2, context=None):
    """M1 from a train-m1 checkpoint as a coding model for whole files: rows by exact rule `rule` on the backend,
    restarting every `context` symbols (default: the sequence length it was trained on, never more).

    A file is one long sequence, but M1 was trained on BOS-started sequences of seq_len symbols; restarting it
    every seq_len symbols keeps every context it reads within those it learned (and each row's cost bounded).
    A longer `context` would make it extrapolate, so it is refused; a shorter one is allowed (it costs bits).
    """
    params, cfg, _, meta = load_checkpoint(path, "m1")
    trained = trained_context(meta)
    if context is None and trained is None:
        raise ValueError(f"{path} does not record the sequence length M1 was trained on (an older checkpoint); "
                         "give it with --m1-context N")
    if context is not None and trained is not None and context > trained:
        raise ValueError(f"--m1-context {context}: {path} was trained on {trained}-symbol sequences; M1 does not "
                         "code contexts longer than those it was trained on")
    if context is not None and context < 1:
        raise ValueError(f"--m1-context {context}: must be at least 1")
    return coding_model(params, cfg, backend_name, rule, restart_every=context or trained)
