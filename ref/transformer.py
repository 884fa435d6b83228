"""The reference Transformer (M1 and M2): a T5-style decoder-only LM in plain NumPy, forward and hand-written backward.

This file is the ground truth that the fast backends are tested against, so it favours being obviously right over
being fast (while avoiding Python loops over tokens or heads). Read it top to bottom:

1. `Config`, `SIZES`, `make_config`: the shapes (docs/paper.md §2, Table 4).
2. `init_params`: the parameter dict, with exactly the names and shapes of docs/design.md ("The Transformer").
3. One forward/backward pair per layer (embedding, RMSNorm, attention, gated MLP, unembedding, loss), llm.c style:
   each `*_forward` returns its output and a small `cache` tuple holding what its `*_backward` needs.
4. `forward` (logits only) and `loss_and_grads` (loss + gradient of every parameter).
5. Parameter counting and FLOPs per token.

Architecture (T5X decoder-only, as the paper trained it):
    x = embed[inputs]                                               [B, T, d]
    for each block:
        x = x + Attention(RMSNorm(x) * attn_norm)                   causal, T5 relative position bias per layer
        x = x + (relu(h W_gate) * (h W_up)) W_down,  h = RMSNorm(x) * mlp_norm
    logits = (RMSNorm(x) * final_norm) @ unembed                    [B, T, V_out]
RMSNorm has a scale and no bias, eps 1e-6. Attention scores are q.k / sqrt(head_dim) + rel_bias[bucket(i - j), h];
head h owns columns h*dh .. (h+1)*dh - 1 of wq/wk/wv (and the same rows of wo). There are no biases and no dropout.

Loss (see `loss_forward`): with per-position weights w (1 for real targets, 0 for padding; any non-negative values
are allowed), lse_t = logsumexp(logits_t) and W = sum_t w_t,
    loss = sum_t w_t * (lse_t - logits_t[target_t]) / W  +  z_loss * sum_t w_t * lse_t^2 / W.
Both terms are weighted means with the same normaliser, so padding contributes to neither (as in T5X, where the
z-loss is added per token before the token weights are applied and the sum is divided by the number of real tokens).

Precision: everything is computed in the dtype of the parameters (float32 or float64). Float64 is what the gradient
checks use; float32 is the training dtype here (the paper trained in bfloat16).
"""
import dataclasses
import functools
import math

import numpy as np

RMS_EPS = 1e-6  # RMSNorm epsilon (T5 uses 1e-6)
NO_LOSS_WEIGHT = "the loss weights sum to zero: there is no position to compute a loss on"


# ----------------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    """Shape and loss settings of one Transformer. Head dim is d_model / n_heads (64 for every paper size)."""

    vocab_in: int  # ids the embedding accepts (M1: 258 = 256 bytes + EOS + BOS)
    vocab_out: int  # ids the output predicts (M1: 257 = 256 bytes + EOS)
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int
    num_buckets: int = 32  # relative-position buckets (T5)
    max_distance: int = 128  # distances at or beyond this share the last bucket (T5)
    z_loss: float = 1e-4
    dtype: str = "float32"  # dtype of the parameters and of all arithmetic

    def __post_init__(self):
        for name in ("vocab_in", "vocab_out", "d_model", "n_heads", "n_layers", "d_ff", "num_buckets", "max_distance"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"invalid config: {name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"invalid config: d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.num_buckets < 2:
            raise ValueError(f"invalid config: num_buckets must be at least 2, got {self.num_buckets}")
        if self.max_distance < self.num_buckets // 2:
            raise ValueError(f"invalid config: max_distance {self.max_distance} < num_buckets/2")
        if not (isinstance(self.z_loss, (int, float)) and self.z_loss >= 0):
            raise ValueError(f"invalid config: z_loss must be a non-negative number, got {self.z_loss!r}")
        if np.dtype(self.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"invalid config: dtype must be float32 or float64, got {self.dtype!r}")
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)  # normalise np.float32 -> "float32"

    @property
    def head_dim(self):
        return self.d_model // self.n_heads

    def to_dict(self):
        """Plain JSON-able dict (checkpoints store this)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Inverse of `to_dict`; unknown or missing keys raise ValueError naming them."""
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"invalid config: unknown keys {unknown}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(f"invalid config: {error}") from None


# The paper's Table 4 (head dim 64 throughout) plus tiny sizes for tests and quick runs.
SIZES = {
    "3m": dict(d_model=256, n_heads=4, n_layers=3, d_ff=1024),  # M1
    "25m": dict(d_model=512, n_heads=8, n_layers=6, d_ff=2048),
    "113m": dict(d_model=768, n_heads=12, n_layers=12, d_ff=3072),
    "403m": dict(d_model=1024, n_heads=16, n_layers=24, d_ff=4096),
    "2b": dict(d_model=2048, n_heads=32, n_layers=24, d_ff=8192),  # ~1.61B non-embedding: see docs/paper.md §2
    "tiny": dict(d_model=32, n_heads=4, n_layers=2, d_ff=64),
    "micro": dict(d_model=8, n_heads=2, n_layers=1, d_ff=12),
}


def make_config(size, vocab_in=258, vocab_out=257, **overrides):
    """Config of a named size (see `SIZES`); the defaults are M1's vocabularies (docs/design.md "Symbols")."""
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; known sizes: {sorted(SIZES)}")
    return Config(vocab_in=vocab_in, vocab_out=vocab_out, **{**SIZES[size], **overrides})


def param_shapes(cfg):
    """name -> shape of every parameter, in a fixed order (docs/design.md "The Transformer")."""
    d, inner, ff = cfg.d_model, cfg.n_heads * cfg.head_dim, cfg.d_ff
    shapes = {"embed": (cfg.vocab_in, d)}
    for i in range(cfg.n_layers):
        p = f"blocks.{i}."
        shapes.update({
            p + "attn_norm": (d,), p + "wq": (d, inner), p + "wk": (d, inner), p + "wv": (d, inner),
            p + "wo": (inner, d), p + "rel_bias": (cfg.num_buckets, cfg.n_heads),
            p + "mlp_norm": (d,), p + "w_gate": (d, ff), p + "w_up": (d, ff), p + "w_down": (ff, d),
        })
    shapes["final_norm"] = (d,)
    shapes["unembed"] = (d, cfg.vocab_out)
    return shapes


def init_params(cfg, seed):
    """Random parameters for `cfg`, a dict name -> array of cfg.dtype.

    Initialisation follows T5X's defaults in spirit: the embedding is N(0, 1) (RMSNorm follows it, so its scale does
    not matter); every matrix is N(0, 1/fan_in) (variance scaling, fan-in); norm scales start at 1; the relative
    position biases are N(0, 0.1^2), small so that early attention is close to content-only. Values are drawn in
    float64 from one NumPy PCG64 stream in the fixed order of `param_shapes` and then cast, so the float32 and float64
    models of one seed agree to float32 rounding.
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(cfg.dtype)
    params = {}
    for name, shape in param_shapes(cfg).items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf.endswith("norm"):
            value = np.ones(shape)
        elif leaf == "embed":
            value = rng.standard_normal(shape)
        elif leaf == "rel_bias":
            value = 0.1 * rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) / math.sqrt(shape[0])
        params[name] = value.astype(dtype)
    return params


def check_params(params, cfg):
    """Raise ValueError naming the problem if params do not have exactly cfg's names, shapes and dtype."""
    shapes = param_shapes(cfg)
    missing, extra = sorted(set(shapes) - set(params)), sorted(set(params) - set(shapes))
    if missing or extra:
        raise ValueError(f"parameters do not match the config: missing {missing[:5]}, unexpected {extra[:5]}")
    for name, shape in shapes.items():
        array = params[name]
        if tuple(array.shape) != shape:
            raise ValueError(f"parameter {name} has shape {tuple(array.shape)}, the config needs {shape}")
        if array.dtype != np.dtype(cfg.dtype):
            raise ValueError(f"parameter {name} has dtype {array.dtype}, the config needs {cfg.dtype}")


# ----------------------------------------------------------------------------------------------------------------------
# Relative position buckets (T5, causal)
# ----------------------------------------------------------------------------------------------------------------------


def relative_position_bucket(distance, num_buckets=32, max_distance=128):
    """T5's causal bucket of a query-key distance n = i - j (query i, key j; n < 0, the future, maps to 0).

    Half of the buckets are exact: n = 0 .. num_buckets/2 - 1 each get their own. The other half cover
    [num_buckets/2, max_distance) logarithmically: bucket = num_buckets/2 + floor(log(n / (num_buckets/2)) /
    log(max_distance / (num_buckets/2)) * num_buckets/2), clipped to num_buckets - 1 (all n >= max_distance share
    the last bucket). With 32 buckets and max distance 128: n 0-15 exact, 16-18 -> 16, 19-20 -> 17, ..., 99-112 -> 30, and every
    n >= 113 -> 31 (the log formula reaches bucket 31 before max_distance; 128 and beyond are clipped to it).
    Computed in float64; for every n this equals the exact integer definition (tested), and also T5X's float32 form.
    """
    n = np.maximum(np.asarray(distance, dtype=np.int64), 0)
    max_exact = num_buckets // 2
    safe = np.maximum(n, max_exact).astype(np.float64)  # avoid log(0); small n take the exact branch below
    large = max_exact + (np.log(safe / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return np.where(n < max_exact, n, large)


@functools.lru_cache(maxsize=64)
def bucket_table(seq_len, num_buckets=32, max_distance=128):
    """[T, T] int64 bucket of (query i, key j); read-only and cached, since every layer and step reuses it."""
    positions = np.arange(seq_len)
    table = relative_position_bucket(positions[:, None] - positions[None, :], num_buckets, max_distance)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=64)
def causal_mask(seq_len, dtype_name):
    """[T, T] additive mask: 0 where key j <= query i, -inf above the diagonal (the future)."""
    mask = np.triu(np.full((seq_len, seq_len), -np.inf, dtype=np.dtype(dtype_name)), k=1)
    mask.setflags(write=False)
    return mask


# ----------------------------------------------------------------------------------------------------------------------
# Layers: forward returns (out, cache), backward takes (dout, cache) and returns input and parameter gradients.
# ----------------------------------------------------------------------------------------------------------------------


def embedding_forward(table, inputs):
    """x[b, t] = table[inputs[b, t]].   table [V_in, d], inputs [B, T] -> x [B, T, d]"""
    return table[inputs], inputs


def embedding_backward(dx, cache, vocab):
    """dtable[v] = sum of dx[b, t] over positions with inputs[b, t] == v (scatter-add; repeated ids accumulate)."""
    inputs = cache
    dtable = np.zeros((vocab, dx.shape[-1]), dtype=dx.dtype)
    np.add.at(dtable, inputs.reshape(-1), dx.reshape(-1, dx.shape[-1]))
    return dtable


def rmsnorm_forward(x, scale):
    """y = x / sqrt(mean(x^2) + eps) * scale.   x [..., d], scale [d] -> y [..., d]"""
    rrms = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + RMS_EPS)  # [..., 1]
    return x * rrms * scale, (x, rrms, scale)


def rmsnorm_backward(dy, cache):
    """With xhat = x * r and r = (mean(x^2) + eps)^-1/2:  dscale = sum(dy * xhat),
    dx = r * (g - x * r^2 * mean(g * x)) where g = dy * scale (r depends on every x of the row)."""
    x, rrms, scale = cache
    dscale = np.sum((dy * x * rrms).reshape(-1, x.shape[-1]), axis=0)  # [d]
    g = dy * scale  # [..., d]
    dx = rrms * (g - x * (rrms * rrms) * np.mean(g * x, axis=-1, keepdims=True))
    return dx, dscale


def linear_backward(dy, x, w):
    """y = x @ w:  dx = dy @ w.T, dw = x.T @ dy summed over all leading axes.   x [..., n], w [n, m], dy [..., m]"""
    dx = dy @ w.T
    dw = x.reshape(-1, x.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])
    return dx, dw


def split_heads(x, n_heads):
    """[B, T, H*dh] -> [B, H, T, dh] (head h = columns h*dh .. (h+1)*dh - 1)."""
    B, T, inner = x.shape
    return x.reshape(B, T, n_heads, inner // n_heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """[B, H, T, dh] -> [B, T, H*dh], the inverse of split_heads."""
    B, H, T, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * dh)


def attention_forward(h, wq, wk, wv, wo, rel_bias, cfg):
    """Causal multi-head attention with T5 relative position bias.   h [B, T, d] -> out [B, T, d]

    scores[b, h, i, j] = q_i . k_j / sqrt(dh) + rel_bias[bucket(i - j), h]   (j <= i; the future is -inf)
    """
    B, T, _ = h.shape
    H, dh = cfg.n_heads, cfg.head_dim
    buckets = bucket_table(T, cfg.num_buckets, cfg.max_distance)  # [T, T]
    # contiguous per-head copies: NumPy's batched matmul is several times faster on them than on strided views
    q = np.ascontiguousarray(split_heads(h @ wq, H))  # [B, H, T, dh]
    k = np.ascontiguousarray(split_heads(h @ wk, H))  # [B, H, T, dh]
    v = np.ascontiguousarray(split_heads(h @ wv, H))  # [B, H, T, dh]
    bias = rel_bias[buckets].transpose(2, 0, 1)  # [H, T, T]
    scale = 1.0 / math.sqrt(dh)
    k_t = np.ascontiguousarray(k.transpose(0, 1, 3, 2))  # [B, H, dh, T]
    scores = (q @ k_t) * scale + bias + causal_mask(T, h.dtype.name)  # [B, H, T, T]
    scores -= scores.max(axis=-1, keepdims=True)  # the diagonal is always finite, so every row has a finite max
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)  # [B, H, T, T], zero above the diagonal
    attended = merge_heads(probs @ v)  # [B, T, H*dh]
    out = attended @ wo  # [B, T, d]
    return out, (h, q, k, v, probs, attended, buckets, wq, wk, wv, wo, scale)


def attention_backward(dout, cache, num_buckets):
    """Backward of attention_forward: returns dh and the gradients of wq, wk, wv, wo, rel_bias."""
    h, q, k, v, probs, attended, buckets, wq, wk, wv, wo, scale = cache
    H = q.shape[1]
    dattended, dwo = linear_backward(dout, attended, wo)  # [B, T, H*dh], [H*dh, d]
    dctx = split_heads(dattended, H)  # [B, H, T, dh]
    dprobs = dctx @ v.transpose(0, 1, 3, 2)  # [B, H, T, T]
    dv = probs.transpose(0, 1, 3, 2) @ dctx  # [B, H, T, dh]
    # softmax backward: dscores = P * (dP - sum_j P dP); masked entries have P = 0 and get 0.
    dscores = probs * (dprobs - np.sum(dprobs * probs, axis=-1, keepdims=True))  # [B, H, T, T]
    dq = (dscores @ k) * scale  # [B, H, T, dh]
    dk = (dscores.transpose(0, 1, 3, 2) @ q) * scale  # [B, H, T, dh]
    # rel_bias[bucket, h] was added to every (b, i, j) with that bucket: scatter-add one flat bincount over (bucket, h).
    dbias = dscores.sum(axis=0)  # [H, T, T]
    flat_index = (buckets[None, :, :] * H + np.arange(H)[:, None, None]).reshape(-1)  # bucket-major, then head
    drel_bias = np.bincount(flat_index, weights=dbias.reshape(-1), minlength=num_buckets * H)
    drel_bias = drel_bias.reshape(num_buckets, H).astype(h.dtype)
    dh = np.zeros_like(h)
    grads = {}
    for name, dproj, w in (("wq", dq, wq), ("wk", dk, wk), ("wv", dv, wv)):
        dh_part, grads[name] = linear_backward(merge_heads(dproj), h, w)
        dh += dh_part
    grads["wo"], grads["rel_bias"] = dwo, drel_bias
    return dh, grads


def mlp_forward(h, w_gate, w_up, w_down):
    """Gated ReLU MLP: (relu(h W_gate) * (h W_up)) W_down.   h [B, T, d] -> out [B, T, d]"""
    gate = h @ w_gate  # [B, T, ff]
    up = h @ w_up  # [B, T, ff]
    act = np.maximum(gate, 0) * up  # [B, T, ff]
    return act @ w_down, (h, gate, up, act, w_gate, w_up, w_down)


def mlp_backward(dout, cache):
    """Backward of mlp_forward (relu'(0) taken as 0): returns dh and the gradients of w_gate, w_up, w_down."""
    h, gate, up, act, w_gate, w_up, w_down = cache
    dact, dw_down = linear_backward(dout, act, w_down)  # [B, T, ff], [ff, d]
    dgate = dact * up * (gate > 0)  # [B, T, ff]
    dup = dact * np.maximum(gate, 0)  # [B, T, ff]
    dh_gate, dw_gate = linear_backward(dgate, h, w_gate)
    dh_up, dw_up = linear_backward(dup, h, w_up)
    return dh_gate + dh_up, {"w_gate": dw_gate, "w_up": dw_up, "w_down": dw_down}


def block_forward(x, params, prefix, cfg):
    """One pre-norm block: x + attn(norm(x)), then + mlp(norm(x)).   x [B, T, d] -> [B, T, d]"""
    h, norm1 = rmsnorm_forward(x, params[prefix + "attn_norm"])
    attn_out, attn = attention_forward(h, params[prefix + "wq"], params[prefix + "wk"], params[prefix + "wv"],
                                       params[prefix + "wo"], params[prefix + "rel_bias"], cfg)
    x = x + attn_out
    h, norm2 = rmsnorm_forward(x, params[prefix + "mlp_norm"])
    mlp_out, mlp = mlp_forward(h, params[prefix + "w_gate"], params[prefix + "w_up"], params[prefix + "w_down"])
    return x + mlp_out, (norm1, attn, norm2, mlp)


def block_backward(dx, cache, prefix, cfg):
    """Backward of block_forward: returns dx (into the block) and the block's parameter gradients, by name."""
    norm1, attn, norm2, mlp = cache
    grads = {}
    dh, mlp_grads = mlp_backward(dx, mlp)  # residual: dx flows on unchanged and also through the MLP branch
    dx_norm, grads[prefix + "mlp_norm"] = rmsnorm_backward(dh, norm2)
    dx = dx + dx_norm
    dh, attn_grads = attention_backward(dx, attn, cfg.num_buckets)
    dx_norm, grads[prefix + "attn_norm"] = rmsnorm_backward(dh, norm1)
    dx = dx + dx_norm
    grads.update({prefix + name: value for name, value in {**attn_grads, **mlp_grads}.items()})
    return dx, grads


def logsumexp(logits):
    """Stable log(sum(exp(logits))) over the last axis.   [..., V] -> [...]"""
    top = logits.max(axis=-1, keepdims=True)
    return (top + np.log(np.sum(np.exp(logits - top), axis=-1, keepdims=True)))[..., 0]


def loss_forward(logits, targets, weights, z_loss):
    """Weighted mean cross-entropy plus z-loss (module docstring).   logits [B, T, V], targets/weights [B, T]

    Returns (loss, cache). Positions with weight 0 may hold any target (e.g. -1 for padding); they are ignored.
    """
    total_weight = weights.sum()
    if not total_weight > 0:
        raise ValueError(NO_LOSS_WEIGHT)
    safe_targets = np.where(weights != 0, targets, 0)  # [B, T]
    lse = logsumexp(logits)  # [B, T]
    target_logit = np.take_along_axis(logits, safe_targets[..., None], axis=-1)[..., 0]  # [B, T]
    cross_entropy = np.sum(weights * (lse - target_logit)) / total_weight
    z_term = z_loss * np.sum(weights * lse * lse) / total_weight
    return cross_entropy + z_term, (logits, safe_targets, weights, total_weight, lse, z_loss)


def loss_backward(cache):
    """dloss/dlogits = w / W * (softmax - onehot(target) + 2 z_loss lse softmax).   -> [B, T, V]"""
    logits, targets, weights, total_weight, lse, z_loss = cache
    softmax = np.exp(logits - lse[..., None])  # [B, T, V]
    dlogits = softmax * (1.0 + 2.0 * z_loss * lse)[..., None]
    np.put_along_axis(dlogits, targets[..., None],
                      np.take_along_axis(dlogits, targets[..., None], axis=-1) - 1.0, axis=-1)
    dlogits *= (weights / total_weight)[..., None]
    return dlogits.astype(logits.dtype, copy=False)


# ----------------------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------------------


def check_inputs(inputs, cfg):
    """int64 ids [B, T] after the checks every backend runs on a model's inputs, with these messages."""
    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or inputs.shape[1] < 1:
        raise ValueError(f"inputs must be a [batch, time] integer array with time >= 1, got shape {inputs.shape}")
    if not np.issubdtype(inputs.dtype, np.integer):
        raise ValueError(f"inputs must be integers, got {inputs.dtype}")
    if inputs.size and (inputs.min() < 0 or inputs.max() >= cfg.vocab_in):
        raise ValueError(f"input ids must lie in [0, {cfg.vocab_in}), got {inputs.min()}..{inputs.max()}")
    return inputs.astype(np.int64, copy=False)


def dtype_of(params, cfg):
    """The parameters' dtype, which must be the config's."""
    dtype = np.dtype(cfg.dtype)
    if params["embed"].dtype != dtype:
        raise ValueError(f"parameters are {params['embed'].dtype} but the config says {cfg.dtype}")
    return dtype


def check_targets(targets, weights, shape, cfg, dtype):
    """(targets [B, T], weights [B, T] in dtype) after the checks every backend runs on them, with these messages.

    weights None means 1 everywhere; positions of weight 0 may hold any target (e.g. -1 for padding).
    """
    targets = np.asarray(targets)
    weights = np.ones(targets.shape, dtype=dtype) if weights is None else np.asarray(weights, dtype=dtype)
    if targets.shape != tuple(shape) or weights.shape != tuple(shape):
        raise ValueError(f"targets {targets.shape} and weights {weights.shape} must have the inputs' shape "
                         f"{tuple(shape)}")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("loss weights must be finite and non-negative")
    used = targets[weights != 0]
    if used.size and (used.min() < 0 or used.max() >= cfg.vocab_out):
        raise ValueError(f"targets with non-zero weight must lie in [0, {cfg.vocab_out})")
    if not weights.sum(dtype=np.float64) > 0:
        raise ValueError(NO_LOSS_WEIGHT)
    return targets, weights


def hidden_forward(params, cfg, x):
    """Blocks and final norm on embedded inputs x [B, T, d] -> (normed hidden [B, T, d], caches)."""
    caches = []
    for i in range(cfg.n_layers):
        x, cache = block_forward(x, params, f"blocks.{i}.", cfg)
        caches.append(cache)
    h, final = rmsnorm_forward(x, params["final_norm"])
    return h, (caches, final)


def forward(params, cfg, inputs):
    """Logits [B, T, vocab_out] for int inputs [B, T]; row t predicts the id after input t (causal)."""
    dtype_of(params, cfg)
    inputs = check_inputs(inputs, cfg)
    x, _ = embedding_forward(params["embed"], inputs)
    h, _ = hidden_forward(params, cfg, x)
    return h @ params["unembed"]


def loss_and_grads_from_embeddings(params, cfg, x, targets, weights=None):
    """Loss and gradients from already-embedded inputs x [B, T, d].

    Returns (loss, grads, dx) with grads for every parameter except "embed" and dx = dloss/dx [B, T, d]. Exposed so
    that tests can check the gradient of the input path itself; `loss_and_grads` adds the embedding scatter.
    """
    dtype = dtype_of(params, cfg)
    targets, weights = check_targets(targets, weights, x.shape[:2], cfg, dtype)

    # forward
    h, (block_caches, final_cache) = hidden_forward(params, cfg, x)  # [B, T, d]
    logits = h @ params["unembed"]  # [B, T, V_out]
    loss, loss_cache = loss_forward(logits, targets.astype(np.int64), weights, cfg.z_loss)

    # backward
    grads = {}
    dlogits = loss_backward(loss_cache)  # [B, T, V_out]
    dh, grads["unembed"] = linear_backward(dlogits, h, params["unembed"])
    dx, grads["final_norm"] = rmsnorm_backward(dh, final_cache)
    for i in reversed(range(cfg.n_layers)):
        dx, block_grads = block_backward(dx, block_caches[i], f"blocks.{i}.", cfg)
        grads.update(block_grads)
    grads = {name: value.astype(dtype, copy=False) for name, value in grads.items()}
    return float(loss), grads, dx


def loss_and_grads(params, cfg, inputs, targets, weights=None):
    """(loss, grads): the loss of the module docstring and its gradient for every parameter (same names/shapes).

    inputs [B, T] ints in [0, vocab_in); targets [B, T] ints in [0, vocab_out) where the weight is non-zero;
    weights [B, T] non-negative (default: all ones). The loss is a Python float; grads are arrays of the params' dtype.
    """
    inputs = check_inputs(inputs, cfg)
    x, embed_cache = embedding_forward(params["embed"], inputs)
    loss, grads, dx = loss_and_grads_from_embeddings(params, cfg, x, targets, weights)
    grads["embed"] = embedding_backward(dx, embed_cache, cfg.vocab_in)
    return loss, {name: grads[name] for name in params}


# ----------------------------------------------------------------------------------------------------------------------
# Counting
# ----------------------------------------------------------------------------------------------------------------------


def count_params(cfg):
    """Parameter counts by kind, as a dict:

    - "matrices": the blocks' weight matrices, L * (4 d H dh + 3 d ff). This is exactly how the paper's size names
      count (3m = 3,145,728; 113m = 113,246,208; docs/paper.md §2) and what FLOPs/byte uses.
    - "non_embedding": everything except embed and unembed (adds norm scales and relative biases, < 0.1%).
    - "embedding": embed + unembed.   - "total".
    """
    shapes = param_shapes(cfg)
    sizes = {name: int(np.prod(shape)) for name, shape in shapes.items()}
    embedding = sizes["embed"] + sizes["unembed"]
    matrix_leaves = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
    matrices = sum(size for name, size in sizes.items() if name.rsplit(".", 1)[-1] in matrix_leaves)
    total = sum(sizes.values())
    return {"matrices": matrices, "non_embedding": total - embedding, "embedding": embedding, "total": total}


def flops_per_token(cfg, seq_len):
    """Approximate FLOPs per token (a multiply-add counts 2), as a dict with "forward" and "training".

    forward = 2 * matrices (the blocks' matmuls) + 2 * d * vocab_out (the output layer)
              + n_layers * 4 * seq_len * d (scores q.k and the weighted sum of v, counted over the full context as
              Kaplan et al. do; causal masking halves this in practice).
    training = 3 * forward (the backward pass costs two forwards). Embedding lookups, norms, softmax are ignored.
    The paper's FLOPs/byte uses only 2 * N_nonembedding per token (docs/design.md "Metrics"); this is the fuller count.
    """
    forward_flops = (2 * count_params(cfg)["matrices"] + 2 * cfg.d_model * cfg.vocab_out
                     + cfg.n_layers * 4 * seq_len * cfg.d_model)
    return {"forward": forward_flops, "training": 3 * forward_flops}
