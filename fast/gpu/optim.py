"""GPU optimizers: ref/optim.py's Adafactor and AdamW with fused numba.cuda updates (fast/gpu/kernels_optim.py).

Same interface and state as the reference (`init(params)`, `update(params, grads, state, step)` returning new
arrays and never modifying its inputs, `config()`, `from_config`) and the same state names, so a checkpoint written
by one backend resumes on another. The classes subclass ref's, inheriting the settings, validation and schedules;
`init` and `update` are replaced. Arrays follow the parameters: CuPy parameters (training) give CuPy state and new
parameters with no host round trip inside an update; NumPy parameters are copied to the GPU and the results back.

Differences from ref are rounding only (as in fast.cpu): sums over a tensor (rms of p and of the update, the global
gradient norm, the factored row and column means) accumulate in float64 in a fixed partition, and the update is
applied as p - (lr * scale / clip) * u. Global-norm clipping multiplies each gradient as the kernels read it (a
factor computed on the device from every tensor's sum of squares), with no scaled copy. Tensors of more than two
dimensions (the Transformer has none) are not supported.
"""
import math

import numpy as np

from equalinfo.ref import optim as _ref
from equalinfo.ref.optim import decays, rsqrt_schedule, warmup_cosine_schedule  # noqa: F401  (re-exported)

from . import device
from . import kernels_optim as K
from .device import REDUCE_BLOCKS

__all__ = ["Adafactor", "AdamW", "OPTIMIZERS", "from_config", "global_norm", "clip_by_global_norm", "decays",
           "rsqrt_schedule", "warmup_cosine_schedule"]

COL_CHUNKS = 32  # row chunks of the factored column means (a fixed partition)


def _flat(array):
    return array.reshape(-1)


def _sum_squares_partials(grads):
    """[n_tensors, REDUCE_BLOCKS] float64 partial sums of squares of every gradient (device arrays)."""
    partials = device.xp().empty((len(grads), REDUCE_BLOCKS), np.float64)
    for row, g in enumerate(grads.values()):
        K.sum_squares(_flat(g), partials[row])
    return partials


def global_norm(grads):
    """sqrt of the sum of squares of every gradient entry, accumulated in float64 (as ref.optim.global_norm)."""
    grads = device.to_device(grads)
    return math.sqrt(float(_sum_squares_partials(grads).sum()))


def clip_by_global_norm(grads, max_norm):
    """ref.optim.clip_by_global_norm with this backend's global_norm."""
    return _ref.clip_by_global_norm(grads, max_norm, global_norm)


class _OnDevice:
    """The part the two optimizers share: run `_update` on device arrays, and the global-norm clipping factor."""

    def init(self, params):
        on_device = device.is_device_array(next(iter(params.values())))
        state = super().init(device.to_host(params) if on_device else params)  # ref's zeros, same names
        return device.to_device(state) if on_device else state

    def update(self, params, grads, state, step):
        on_device = device.is_device_array(next(iter(params.values())))
        if not on_device:
            params, grads, state = device.to_device(params), device.to_device(grads), device.to_device(state)
        new_params, new_state = self._update(params, grads, state, step)
        if not on_device:
            return device.to_host(new_params), device.to_host(new_state)
        return new_params, new_state

    def _grad_scales(self, grads):
        """dtype -> 1-element device array: the factor every gradient is multiplied by (1 when not clipping)."""
        xp = device.xp()
        dtypes = {g.dtype for g in grads.values()}
        if self.clip_norm is None:
            return {dtype: xp.ones(1, dtype) for dtype in dtypes}
        scale = xp.empty(1, np.float64)
        K.finish_grad_scale(_sum_squares_partials(grads), self.clip_norm, scale)
        return {dtype: scale.astype(dtype) for dtype in dtypes}


class Adafactor(_OnDevice, _ref.Adafactor):
    """ref.optim.Adafactor (T5X's defaults; see its docstring for the algorithm) with fused GPU updates."""

    def _update(self, params, grads, state, step):
        scales = self._grad_scales(grads)
        lr = self.learning_rate(step)
        beta2 = 1.0 - (step - self.step_offset + 1.0) ** (-self.decay_rate)
        new_params, new_state = {}, {}
        for name, p in params.items():
            if p.ndim > 2:
                raise NotImplementedError("fast.gpu Adafactor: tensors of more than two dimensions")
            g, scale = grads[name], scales[grads[name].dtype]
            if self.is_factored(p.shape):
                new_params[name] = self._factored(name, p, g, scale, state, new_state, lr, beta2)
            else:
                new_params[name] = self._unfactored(name, p, g, scale, state, new_state, lr, beta2)
        return new_params, new_state

    def _coefficient(self, partial, size, lr, dtype):
        """1-element device array: lr * max(rms(p), eps2) / max(1, rms(u) / threshold)."""
        coef = device.xp().empty(1, dtype)
        K.finish_coefficient(partial, size, lr, self.epsilon2, self.clipping_threshold,
                             self.multiply_by_parameter_scale, coef)
        return coef

    def _factored(self, name, p, g, scale, state, new_state, lr, beta2):
        """Factored second moments of a matrix [R, C]: row and column EMAs, V ~ outer(v_row, v_col) / mean(v_row)."""
        xp, dtype = device.xp(), p.dtype
        R, C = p.shape
        row_mean = xp.empty(R, np.float64)
        col_partial = xp.empty((min(COL_CHUNKS, R), C), np.float64)
        K.factored_moments(g, scale, self.epsilon1, row_mean, col_partial)
        col_mean = col_partial.sum(axis=0) / R
        v_row = beta2 * state["v_row/" + name] + (1 - beta2) * row_mean.astype(dtype)  # [R]
        v_col = beta2 * state["v_col/" + name] + (1 - beta2) * col_mean.astype(dtype)  # [C]
        new_state["v_row/" + name], new_state["v_col/" + name] = v_row, v_col
        row_factor = (1.0 / xp.sqrt(v_row / v_row.mean())).astype(dtype)  # [R]
        col_factor = (1.0 / xp.sqrt(v_col)).astype(dtype)  # [C]
        partial = xp.empty((REDUCE_BLOCKS, 2), np.float64)
        K.factored_sums(g, scale, row_factor, col_factor, p, partial)
        out = xp.empty_like(p)
        K.factored_apply(g, scale, row_factor, col_factor, p, self._coefficient(partial, p.size, lr, dtype), out)
        return out

    def _unfactored(self, name, p, g, scale, state, new_state, lr, beta2):
        """Full second moment v (vectors and small matrices)."""
        xp = device.xp()
        v_out = xp.empty_like(p)
        partial = xp.empty((REDUCE_BLOCKS, 2), np.float64)
        K.unfactored_update(_flat(g), scale, self.epsilon1, beta2, _flat(state["v/" + name]), _flat(p),
                            _flat(v_out), partial)
        out = xp.empty_like(p)
        K.unfactored_apply(_flat(g), scale, _flat(v_out), _flat(p), self._coefficient(partial, p.size, lr, p.dtype),
                           _flat(out))
        new_state["v/" + name] = v_out
        return out


class AdamW(_OnDevice, _ref.AdamW):
    """ref.optim.AdamW (decoupled weight decay, warmup + cosine, global-norm clipping), one fused pass per tensor."""

    def _update(self, params, grads, state, step):
        xp = device.xp()
        scales = self._grad_scales(grads)
        lr = self.learning_rate(step)
        correction1, correction2 = 1.0 - self.b1 ** (step + 1), 1.0 - self.b2 ** (step + 1)
        new_params, new_state = {}, {}
        for name, p in params.items():
            decay = self.weight_decay if (self.weight_decay and decays(name, p.shape)) else 0.0
            m_out, v_out, p_out = xp.empty_like(p), xp.empty_like(p), xp.empty_like(p)
            g = grads[name]
            K.adamw(_flat(g), scales[g.dtype], _flat(state["m/" + name]), _flat(state["v/" + name]), _flat(p),
                    self.b1, self.b2, correction1, correction2, self.eps, lr, decay, _flat(m_out), _flat(v_out),
                    _flat(p_out))
            new_params[name], new_state["m/" + name], new_state["v/" + name] = p_out, m_out, v_out
        return new_params, new_state


OPTIMIZERS = {"adafactor": Adafactor, "adamw": AdamW}


def from_config(config):
    """Rebuild a GPU optimizer from its `config()` dict (the same dicts as ref's)."""
    return _ref.from_config(config, OPTIMIZERS)
