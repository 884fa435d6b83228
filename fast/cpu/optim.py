"""Fast CPU optimizers: ref/optim.py's Adafactor and AdamW with fused Numba updates (fast/cpu/kernels_optim.py).

Same interface and state as the reference (`init(params)`, `update(params, grads, state, step)` returning new
arrays and never modifying its inputs, `config()`, `from_config`), and the same names in the state dict, so a
checkpoint written with one backend resumes on the other. The classes subclass ref's, inheriting the settings,
validation, schedules and `init`; only `update` is replaced. The schedules and clipping helpers are re-exported.

Differences from ref are rounding only: sums (rms of p and of the update, the global gradient norm, the factored
row and column means) accumulate in float64 over fixed chunks, and the update is applied as p - (lr * scale / clip)
* u instead of p - lr * scale * (u / clip). Global-norm clipping is applied inside the kernels as a factor on the
gradient (no scaled copy of every gradient). Tensors of more than two dimensions (the Transformer has none) fall
back to the reference's arithmetic.
"""
import math

import numpy as np

from equalinfo.ref import optim as _ref
from equalinfo.ref.optim import decays, rsqrt_schedule, warmup_cosine_schedule  # noqa: F401  (re-exported)

from . import kernels_optim as K
from .kernels_nn import threads_for

__all__ = ["Adafactor", "AdamW", "OPTIMIZERS", "from_config", "global_norm", "clip_by_global_norm", "decays",
           "rsqrt_schedule", "warmup_cosine_schedule"]


def _flat(array):
    """A 1-D contiguous view (or copy, for non-contiguous input) of an array."""
    return np.ascontiguousarray(array).reshape(-1)


def _sum_squares(g):
    with threads_for(g.size):
        return K.sum_squares(_flat(g), 1.0)


def global_norm(grads):
    """sqrt of the sum of squares of every gradient entry, accumulated in float64 (as ref.optim.global_norm)."""
    return math.sqrt(sum(_sum_squares(g) for g in grads.values()))


def _clip_factor(grads, max_norm):
    """ref.optim.clip_factor of this backend's global norm (no norm is computed when there is no limit)."""
    return 1.0 if max_norm is None else _ref.clip_factor(global_norm(grads), max_norm)


def clip_by_global_norm(grads, max_norm):
    """ref.optim.clip_by_global_norm with this backend's global_norm."""
    return _ref.clip_by_global_norm(grads, max_norm, global_norm)


class Adafactor(_ref.Adafactor):
    """ref.optim.Adafactor (T5X's defaults; see its docstring for the algorithm) with fused updates."""

    def update(self, params, grads, state, step):
        grad_scale = _clip_factor(grads, self.clip_norm)
        lr = self.learning_rate(step)
        beta2 = 1.0 - (step - self.step_offset + 1.0) ** (-self.decay_rate)
        new_params, new_state = {}, {}
        for name, p in params.items():
            g = np.ascontiguousarray(grads[name])
            p = np.ascontiguousarray(p)
            if p.ndim > 2:  # not used by the Transformer: reference arithmetic on the scaled gradient
                one = _ref.Adafactor(**{k: v for k, v in self.config().items() if k != "name"} | {"clip_norm": None})
                sub_state = {key: value for key, value in state.items() if key.split("/", 1)[1] == name}
                scaled = (g * grad_scale).astype(g.dtype, copy=False)
                p_new, s_new = one.update({name: p}, {name: scaled}, sub_state, step)
                new_params.update(p_new)
                new_state.update(s_new)
                continue
            with threads_for(p.size):
                if self.is_factored(p.shape):
                    new_params[name] = self._factored(name, p, g, grad_scale, state, new_state, lr, beta2)
                else:
                    new_params[name] = self._unfactored(name, p, g, grad_scale, state, new_state, lr, beta2)
        return new_params, new_state

    def _step_coefficient(self, lr, sum_u2, sum_p2, size):
        """lr * max(rms(p), eps2) / max(1, rms(u) / threshold): the number the update u is multiplied by."""
        clip = 1.0
        if self.clipping_threshold is not None:
            clip = max(1.0, math.sqrt(sum_u2 / size) / self.clipping_threshold)
        scale = max(math.sqrt(sum_p2 / size), self.epsilon2) if self.multiply_by_parameter_scale else 1.0
        return lr * scale / clip

    def _factored(self, name, p, g, grad_scale, state, new_state, lr, beta2):
        """Factored second moments of a matrix [R, C]: row and column EMAs, V ~ outer(v_row, v_col) / mean(v_row)."""
        R, C = p.shape
        dtype = p.dtype
        row_mean = np.empty(R)
        col_partial = np.empty((max(1, min(K.N_CHUNKS, R)), C))
        K.factored_moments(g, grad_scale, self.epsilon1, row_mean, col_partial)
        col_mean = col_partial.sum(axis=0) / R
        v_row = beta2 * state["v_row/" + name] + (1 - beta2) * row_mean.astype(dtype)  # [R]
        v_col = beta2 * state["v_col/" + name] + (1 - beta2) * col_mean.astype(dtype)  # [C]
        new_state["v_row/" + name], new_state["v_col/" + name] = v_row.astype(dtype), v_col.astype(dtype)
        row_factor = (1.0 / np.sqrt(v_row / v_row.mean())).astype(dtype)  # [R]
        col_factor = (1.0 / np.sqrt(v_col)).astype(dtype)  # [C]
        sum_u2, sum_p2 = K.factored_update_rms(g, grad_scale, row_factor, col_factor, p)
        coef = self._step_coefficient(lr, sum_u2, sum_p2, p.size)
        out = np.empty_like(p)
        K.factored_apply(g, grad_scale, row_factor, col_factor, p, coef, out)
        return out

    def _unfactored(self, name, p, g, grad_scale, state, new_state, lr, beta2):
        """Full second moment v (vectors and small matrices)."""
        v = _flat(state["v/" + name])
        v_out = np.empty_like(v)
        sum_u2, sum_p2 = K.unfactored_update(_flat(g), grad_scale, self.epsilon1, beta2, v, _flat(p), v_out)
        coef = self._step_coefficient(lr, sum_u2, sum_p2, p.size)
        out = np.empty_like(p)
        K.unfactored_apply(_flat(g), grad_scale, v_out, _flat(p), coef, out.reshape(-1))
        new_state["v/" + name] = v_out.reshape(p.shape)
        return out


class AdamW(_ref.AdamW):
    """ref.optim.AdamW (decoupled weight decay, warmup + cosine, global-norm clipping) in one fused pass per tensor."""

    def update(self, params, grads, state, step):
        grad_scale = _clip_factor(grads, self.clip_norm)
        lr = self.learning_rate(step)
        correction1, correction2 = 1.0 - self.b1 ** (step + 1), 1.0 - self.b2 ** (step + 1)
        new_params, new_state = {}, {}
        for name, p in params.items():
            decay = self.weight_decay if (self.weight_decay and decays(name, p.shape)) else 0.0
            m_out, v_out, p_out = (np.empty(p.shape, p.dtype) for _ in range(3))
            with threads_for(p.size):
                K.adamw_update(_flat(grads[name]), grad_scale, _flat(state["m/" + name]), _flat(state["v/" + name]),
                               _flat(p), self.b1, self.b2, correction1, correction2, self.eps, lr, decay,
                               m_out.reshape(-1), v_out.reshape(-1), p_out.reshape(-1))
            new_params[name], new_state["m/" + name], new_state["v/" + name] = p_out, m_out, v_out
        return new_params, new_state


OPTIMIZERS = {"adafactor": Adafactor, "adamw": AdamW}


def from_config(config):
    """Rebuild a fast optimizer from its `config()` dict (the same dicts as ref's)."""
    return _ref.from_config(config, OPTIMIZERS)
