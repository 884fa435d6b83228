"""Optimizers for the reference Transformer: Adafactor as T5X uses it (the paper's M1 and M2), and AdamW for short runs.

Both share one interface, chosen so that the whole optimizer state is a flat dict of arrays (a checkpoint stores it
as is):
    opt = Adafactor()                       # or AdamW(peak_lr=..., warmup_steps=..., total_steps=...)
    state = opt.init(params)                # dict name -> array
    params, state = opt.update(params, grads, state, step)
`step` is the 0-based index of this update (the number of updates already applied); the optimizers keep no counter
of their own, so resuming from a checkpoint only needs the step stored beside it. `update` returns new arrays and
never modifies its inputs. Arithmetic is done in each parameter's dtype; the state has the same dtype.
`opt.config()` is a JSON-able dict and `from_config` rebuilds the optimizer from it.

Global-norm gradient clipping (`clip_norm`) is available to both; it is off for Adafactor by default (T5X does not
clip gradients, Adafactor clips its updates instead) and 1.0 for AdamW.
"""
import math

import numpy as np


# ----------------------------------------------------------------------------------------------------------------------
# Schedules and clipping
# ----------------------------------------------------------------------------------------------------------------------


def rsqrt_schedule(step, base=1.0, warmup_steps=10_000):
    """T5X's "rsqrt_decay": base / sqrt(max(step, warmup_steps)).

    So the rate is constant at base / sqrt(warmup) (0.01 for the paper's base 1.0 and 10k warmup) until step
    `warmup_steps`, then decays as 1/sqrt(step). There is no linear ramp: Adafactor's parameter-scaled steps and
    update clipping make one unnecessary (docs/paper.md §1.2 gives our reading of the paper's schedule).
    """
    return base / math.sqrt(max(step, warmup_steps, 1))


def warmup_cosine_schedule(step, peak_lr, warmup_steps, total_steps, final_lr_fraction=0.1):
    """Linear warmup to peak_lr over warmup_steps updates (step 0 uses peak/warmup), then a half cosine from peak_lr
    down to final_lr_fraction * peak_lr at total_steps, constant after that."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    final = final_lr_fraction * peak_lr
    if step >= total_steps:
        return final
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return final + 0.5 * (peak_lr - final) * (1.0 + math.cos(math.pi * progress))


def global_norm(grads):
    """sqrt of the sum of squares of every gradient entry, accumulated in float64."""
    return math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))


def clip_factor(norm, max_norm):
    """The factor global-norm clipping multiplies every gradient by: 1.0 within the limit (or with none)."""
    return 1.0 if max_norm is None or norm <= max_norm else max_norm / norm


def clip_by_global_norm(grads, max_norm, norm_of=global_norm):
    """(grads scaled so that their global norm is at most max_norm, the norm before clipping).

    Gradients already within the limit are returned unchanged (the same arrays). norm_of measures the norm: a fast
    backend passes its own global_norm, whose float64 sum may differ from this one's in the last bits."""
    norm = norm_of(grads)
    factor = clip_factor(norm, max_norm)
    if factor == 1.0:
        return grads, norm
    return {name: (g * factor).astype(g.dtype, copy=False) for name, g in grads.items()}, norm


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# ----------------------------------------------------------------------------------------------------------------------
# Adafactor
# ----------------------------------------------------------------------------------------------------------------------


class Adafactor:
    """Adafactor (Shazeer & Stern 2018) with T5X's defaults, which is what the paper trained M1 and M2 with.

    Our reading of T5X's `t5x.adafactor.Adafactor` defaults (factored=True, multiply_by_parameter_scale=True,
    decay_rate=0.8, step_offset=0, beta1=None, clipping_threshold=1.0, weight_decay_rate=None, epsilon1=1e-30,
    epsilon2=1e-3, min_dim_size_to_factor=128) and of its update, for one parameter p with gradient g at 0-based
    step t:
      1. Second-moment decay: beta2_t = 1 - (t - step_offset + 1)^(-decay_rate). At t = 0 this is 0 (the estimate
         is the first squared gradient), then it grows towards 1 (1 - 2^-0.8 = 0.43 at t = 1, 0.9975 at t = 1000).
      2. Second moments of g^2 + epsilon1:
         - factored, for a matrix whose two dimensions are both >= min_dim_size_to_factor: keep only the row means
           v_row [rows] and column means v_col [cols] (each an EMA with beta2_t) and estimate
           V = outer(v_row, v_col) / mean(v_row), exact when g^2 has rank one;
         - otherwise (vectors, small matrices such as rel_bias [32, H]): a full EMA v of g^2.
      3. u = g / sqrt(V); update clipping: u /= max(1, rms(u) / clipping_threshold).
      4. Relative step: the step size is lr_t * max(rms(p), epsilon2), so each tensor moves by a fraction of its own
         scale (parameters near zero still move by lr_t * epsilon2).
      5. p <- p - lr_t * max(rms(p), epsilon2) * u, with lr_t = base_lr / sqrt(max(t, warmup_steps)) (`rsqrt_schedule`).
    No momentum (beta1 = None) and no weight decay, as in T5X's defaults. For tensors of more than two dimensions
    (we have none) the last two are factored.
    """

    def __init__(self, base_lr=1.0, warmup_steps=10_000, decay_rate=0.8, step_offset=0, clipping_threshold=1.0,
                 multiply_by_parameter_scale=True, factored=True, min_dim_size_to_factor=128, epsilon1=1e-30,
                 epsilon2=1e-3, clip_norm=None):
        if base_lr < 0 or warmup_steps < 0 or decay_rate <= 0 or min_dim_size_to_factor < 1:
            raise ValueError("invalid Adafactor settings: need base_lr >= 0, warmup_steps >= 0, decay_rate > 0, "
                             "min_dim_size_to_factor >= 1")
        if clipping_threshold is not None and clipping_threshold <= 0:
            raise ValueError("invalid Adafactor settings: clipping_threshold must be positive or None")
        self.base_lr, self.warmup_steps = float(base_lr), int(warmup_steps)
        self.decay_rate, self.step_offset = float(decay_rate), int(step_offset)
        self.clipping_threshold = clipping_threshold
        self.multiply_by_parameter_scale, self.factored = bool(multiply_by_parameter_scale), bool(factored)
        self.min_dim_size_to_factor = int(min_dim_size_to_factor)
        self.epsilon1, self.epsilon2 = float(epsilon1), float(epsilon2)
        self.clip_norm = clip_norm

    def config(self):
        return {"name": "adafactor", "base_lr": self.base_lr, "warmup_steps": self.warmup_steps,
                "decay_rate": self.decay_rate, "step_offset": self.step_offset,
                "clipping_threshold": self.clipping_threshold,
                "multiply_by_parameter_scale": self.multiply_by_parameter_scale, "factored": self.factored,
                "min_dim_size_to_factor": self.min_dim_size_to_factor, "epsilon1": self.epsilon1,
                "epsilon2": self.epsilon2, "clip_norm": self.clip_norm}

    def learning_rate(self, step):
        return rsqrt_schedule(step, self.base_lr, self.warmup_steps)

    def is_factored(self, shape):
        """Factor the last two dimensions when both are at least min_dim_size_to_factor."""
        return self.factored and len(shape) >= 2 and min(shape[-2:]) >= self.min_dim_size_to_factor

    def init(self, params):
        """Zero second moments: "v_row/NAME" [..., rows] and "v_col/NAME" [..., cols] for factored matrices,
        "v/NAME" (the parameter's shape) otherwise."""
        state = {}
        for name, p in params.items():
            if self.is_factored(p.shape):
                state["v_row/" + name] = np.zeros(p.shape[:-1], dtype=p.dtype)
                state["v_col/" + name] = np.zeros(p.shape[:-2] + p.shape[-1:], dtype=p.dtype)
            else:
                state["v/" + name] = np.zeros(p.shape, dtype=p.dtype)
        return state

    def update(self, params, grads, state, step):
        grads, _ = clip_by_global_norm(grads, self.clip_norm)
        lr = self.learning_rate(step)
        beta2 = 1.0 - (step - self.step_offset + 1.0) ** (-self.decay_rate)
        new_params, new_state = {}, {}
        for name, p in params.items():
            g = grads[name]
            g2 = np.square(g) + p.dtype.type(self.epsilon1)
            if self.is_factored(p.shape):
                v_row = beta2 * state["v_row/" + name] + (1 - beta2) * g2.mean(axis=-1)  # [..., rows]
                v_col = beta2 * state["v_col/" + name] + (1 - beta2) * g2.mean(axis=-2)  # [..., cols]
                new_state["v_row/" + name], new_state["v_col/" + name] = v_row, v_col
                row_factor = 1.0 / np.sqrt(v_row / v_row.mean(axis=-1, keepdims=True))  # [..., rows]
                col_factor = 1.0 / np.sqrt(v_col)  # [..., cols]
                u = g * row_factor[..., :, None] * col_factor[..., None, :]
            else:
                v = beta2 * state["v/" + name] + (1 - beta2) * g2
                new_state["v/" + name] = v
                u = g / np.sqrt(v)
            if self.clipping_threshold is not None:
                u = u / max(1.0, _rms(u) / self.clipping_threshold)
            step_size = lr * (max(_rms(p), self.epsilon2) if self.multiply_by_parameter_scale else 1.0)
            new_params[name] = (p - step_size * u).astype(p.dtype, copy=False)
        new_state = {key: value.astype(state[key].dtype, copy=False) for key, value in new_state.items()}
        return new_params, new_state


# ----------------------------------------------------------------------------------------------------------------------
# AdamW
# ----------------------------------------------------------------------------------------------------------------------


def decays(name, shape):
    """Weight decay applies to matrices (embeddings and projections), not to norm scales or relative biases."""
    return len(shape) >= 2 and not name.endswith("rel_bias")


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter), warmup + cosine schedule, global-norm clipping.

    For 0-based step t (bias corrections use t + 1) and lr_t = `warmup_cosine_schedule`:
        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  mhat = m / (1 - b1^(t+1));  vhat = v / (1 - b2^(t+1))
        p <- p - lr_t * (mhat / (sqrt(vhat) + eps) + weight_decay * p)      (decay only where `decays`)
    """

    def __init__(self, peak_lr=1e-3, warmup_steps=100, total_steps=10_000, final_lr_fraction=0.1, b1=0.9, b2=0.95,
                 eps=1e-8, weight_decay=0.1, clip_norm=1.0):
        if not (peak_lr >= 0 and warmup_steps >= 0 and total_steps >= 1 and 0 <= b1 < 1 and 0 <= b2 < 1
                and eps > 0 and weight_decay >= 0):
            raise ValueError("invalid AdamW settings")
        self.peak_lr, self.warmup_steps, self.total_steps = float(peak_lr), int(warmup_steps), int(total_steps)
        self.final_lr_fraction, self.b1, self.b2 = float(final_lr_fraction), float(b1), float(b2)
        self.eps, self.weight_decay, self.clip_norm = float(eps), float(weight_decay), clip_norm

    def config(self):
        return {"name": "adamw", "peak_lr": self.peak_lr, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "final_lr_fraction": self.final_lr_fraction, "b1": self.b1,
                "b2": self.b2, "eps": self.eps, "weight_decay": self.weight_decay, "clip_norm": self.clip_norm}

    def learning_rate(self, step):
        return warmup_cosine_schedule(step, self.peak_lr, self.warmup_steps, self.total_steps, self.final_lr_fraction)

    def init(self, params):
        """Zero first and second moments "m/NAME" and "v/NAME", shaped like the parameters."""
        state = {}
        for name, p in params.items():
            state["m/" + name] = np.zeros_like(p)
            state["v/" + name] = np.zeros_like(p)
        return state

    def update(self, params, grads, state, step):
        grads, _ = clip_by_global_norm(grads, self.clip_norm)
        lr = self.learning_rate(step)
        correction1, correction2 = 1.0 - self.b1 ** (step + 1), 1.0 - self.b2 ** (step + 1)
        new_params, new_state = {}, {}
        for name, p in params.items():
            g = grads[name]
            m = self.b1 * state["m/" + name] + (1 - self.b1) * g
            v = self.b2 * state["v/" + name] + (1 - self.b2) * np.square(g)
            direction = (m / correction1) / (np.sqrt(v / correction2) + self.eps)
            if self.weight_decay and decays(name, p.shape):
                direction = direction + self.weight_decay * p
            new_params[name] = (p - lr * direction).astype(p.dtype, copy=False)
            new_state["m/" + name], new_state["v/" + name] = m.astype(p.dtype, copy=False), v.astype(p.dtype,
                                                                                                     copy=False)
        return new_params, new_state


OPTIMIZERS = {"adafactor": Adafactor, "adamw": AdamW}


def from_config(config, optimizers=None):
    """Rebuild an optimizer from its `config()` dict (`optimizers`: name -> class, this module's by default; a
    backend passes its own classes, which take the same settings)."""
    optimizers = OPTIMIZERS if optimizers is None else optimizers
    config = dict(config)
    name = config.pop("name", None)
    if name not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}; known: {sorted(optimizers)}")
    try:
        return optimizers[name](**config)
    except TypeError as error:
        raise ValueError(f"invalid {name} settings: {error}") from None
