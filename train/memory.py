"""The memory a preset's training steps need at least, estimated from its sizes before any work starts.

A preset the schema accepts can still ask for more memory than the machine has: M1 with `seq_len` 65,536 needs
attention matrices of batch x heads x T x T floats per layer (fast/cpu/transformer.py keeps one per layer for the
backward pass, plus one for its gradient), 1 TiB at batch 16; a 2^16-token vocabulary at a long `seq_len` makes
logits of batch x T x vocab. Without this check such a preset fails with a MemoryError deep in a training step,
after M1 or the datasets were already made. The estimate counts only the largest arrays of one training step
(attention, logits and their gradients, the per-layer activations the backward keeps, and the parameters with
AdamW's two moments), so it is a lower bound: a preset above it cannot run, one below may still need more.
preset_schema.validate refuses a preset whose estimate exceeds the memory this process may use (the machine's,
or less under ulimit or a cgroup: limits.available_memory), naming the keys.
"""
from equalinfo.limits import available_memory
from equalinfo.ref.transformer import SIZES, count_params, make_config

M1_VOCAB = 257


def step_bytes(size, batch, seq_len, vocab, dtype="float32"):
    """Bytes of the largest arrays of one training step of a `size` Transformer on [batch, seq_len] tokens."""
    shape = SIZES[size]
    item = 8 if dtype == "float64" else 4
    layers, heads, d, ff = shape["n_layers"], shape["n_heads"], shape["d_model"], shape["d_ff"]
    tokens = batch * seq_len
    attention = (layers + 1) * batch * heads * seq_len * seq_len  # probs per layer + one dscores [B*H, T, T]
    logits = 2 * tokens * vocab  # logits and their gradient [B*T, vocab]
    activations = layers * tokens * (6 * d + 3 * ff)  # x_in, q, k, v, ctx, attended [N, d]; gate, up, act [N, ff]
    parameters = 4 * count_params(make_config(size, vocab + 1, vocab))["total"]  # weights, grads, two moments
    return item * (attention + logits + activations + parameters)


def m2_vocab(method):
    """The largest vocabulary M2 can have on a dataset entry: 257, the SentencePiece vocabulary, or 2^N."""
    if method["method"] == "bytes":
        return M1_VOCAB
    if method["method"] == "spm":
        return int(method.get("vocab_size", 32_000))
    bits = method.get("bits_per_token", 16)
    return 1 << max(bits if isinstance(bits, list) else [bits])


def estimates(preset):
    """[(the keys that set it, bytes)]: M1's training step, and M2's at each size with its largest vocabulary."""
    m1, m2, data = preset["m1"], preset["m2"], preset["datasets"]
    found = [(f"m1.seq_len {m1['seq_len']:,} x m1.batch_size {m1['batch_size']:,} (M1 {m1['size']})",
              step_bytes(m1["size"], m1["batch_size"], m1["seq_len"], M1_VOCAB, m1.get("dtype", "float32")))]
    vocab = max([m2_vocab(method) for method in data["methods"]] or [M1_VOCAB])
    seq_len = max([data["seq_len"]] + [method.get("seq_len", 0) for method in data["methods"]])
    for size in m2["sizes"]:
        found.append((f"datasets.seq_len {seq_len:,} x m2.batch_size {m2['batch_size']:,} (M2 {size}, "
                      f"vocabulary {vocab:,})",
                      step_bytes(size, m2["batch_size"], seq_len, vocab, m2.get("dtype", "float32"))))
    return found


def check(preset, available=None):
    """None, or the words of the first estimate above `available` bytes (default: what this process may use,
    limits.available_memory)."""
    available = available_memory() if available is None else available
    if available is None:
        return None
    for key, need in estimates(preset):
        if need > available:
            return (f"{key}: a training step needs at least {need / 2 ** 30:,.1f} GiB, more than the "
                    f"{available / 2 ** 30:,.1f} GiB this process may use (train/memory.py); lower it, the batch size or the model size")
    return None
