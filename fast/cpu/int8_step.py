"""A decoder's whole step of M1 rows by rule 3 or 4 in ONE compiled call: fast/cpu/int8_m1.PrefixRows.extend's
forward pass, every product through the VNNI kernel (fast/cpu/vnni_gemm.py). `Rule3Rows` and `Rule4Rows` are the
growers fast/cpu/m1.py hands the coders: int8_m1's and int8_rows_m1's, with this step where it applies.

Why. A plain-AC decoder's step is 13 rows through 3 layers: 13 products, 3 attentions, 7 RMSNorms, stores, gated
ReLUs and a softmax, ~30 calls from Python into compiled code. After the VNNI kernel took the products' library
calls away, what was left around the kernels -- choosing a GEMM, looking plans up, allocating, each call's
argument checks -- was ~150 us of a ~0.85 ms step (bench/README.md, round 7). Here Python calls once per step.

What it computes: exactly PrefixRows.extend's operations, in the same order, with the same compiled kernels
(int8_m1's quantizing, kernel and rescaling pass `_vnni_products`, its row-vectorized RMSNorm and softmax, and
exact_m1's `_store_newest`, `_attend_newest` and `_gated_relu`), so the same bits (tests/test_vnni_gemm.py compares
the growers with and without this path). It is taken only where every product of the step would go to the VNNI
kernel anyway (EQUALINFO_INT8_GEMM and int8_gemm.choose as for each product), on one thread (attention's parallel
loop is then serial, as `_threads_for` makes it in a decoder's steps), for a float32 M1 whose products are one
K-chunk each (K <= 1040: every size up to 3m's d_ff; larger ones go the general way).
"""
import math
import os

import numpy as np
from numba import njit

from equalinfo.fast.cpu import int8_gemm, int8_m1, int8_rows_m1, vnni_gemm
from equalinfo.fast.cpu.exact_m1 import _attend_newest, _gated_relu, _store_newest, numba_threads
from equalinfo.fast.cpu.int8_m1 import (_SIGN_MASKS, _rms_norm_rows, _round_bits_to_bfloat16, _softmax64_rows,
                                        _vnni_products)
from equalinfo.ref.exact_m1 import RMS_EPS
from equalinfo.ref.int8_m1 import CHUNK

_SIGN_MASK = _SIGN_MASKS[4][1]  # float32 bits with the sign cleared (int8_m1._quantize_split's max)


@njit(cache=True)
def _product(x, weights, rule, address, n_parts):
    """int8_m1.Products' result for rows x [N, n]: [n_parts, N, m] float32 (weights: packed, corr, scale)."""
    packed, corr, scale = weights
    fraction_bits, row_max, halves = rule
    parts = np.empty((n_parts, x.shape[0], scale.shape[0] // n_parts), dtype=np.float32)
    cell = np.empty(1, dtype=np.float32)
    _vnni_products(x, x.view(np.int32), _SIGN_MASK, cell, cell.view(np.int32), fraction_bits, row_max, halves,
                   address, packed, corr, scale, parts)
    return parts


@njit(cache=True)
def _rms_norm(x, scale):
    y = np.empty_like(x)
    _rms_norm_rows(x, scale, np.float32(x.shape[1]), np.float32(0), np.float32(1), np.float32(RMS_EPS), y)
    return y


@njit(cache=True)
def _step(x, slots, positions, layers, final_norm, unembed, keys, values, biases, n_heads, round_kv, rule, address,
          attention_scale):
    """float64 rows [A, vocab_out] of the newest positions; x [A, d] float32 embedded inputs (updated in place).
    layers: per layer (attn_norm, mlp_norm, qkv, wo, gate_up, w_down), each product (packed, corr, scale) of its
    weights side by side; keys, values, biases: the grower's per-layer caches and distance biases."""
    n_rows = x.shape[0]
    zero = np.float32(0)
    for layer in range(len(layers)):
        attn_norm, mlp_norm, qkv, wo, gate_up, w_down = layers[layer]
        q_k_v = _product(_rms_norm(x, attn_norm), qkv, rule, address, 3)  # [3, A, d]
        if round_kv:  # rule 4: keys and values are bfloat16 values
            _round_bits_to_bfloat16(q_k_v[1].view(np.uint32))
            _round_bits_to_bfloat16(q_k_v[2].view(np.uint32))
        head_dim = q_k_v.shape[2] // n_heads
        q = q_k_v[0].reshape(n_rows, n_heads, head_dim)
        k = q_k_v[1].reshape(n_rows, n_heads, head_dim)
        v = q_k_v[2].reshape(n_rows, n_heads, head_dim)
        _store_newest(keys[layer], values[layer], slots, positions, k, v)
        attended = np.empty_like(q)
        _attend_newest(q, keys[layer], values[layer], slots, positions, biases[layer], attention_scale, zero,
                       attended)
        x += _product(attended.reshape(n_rows, -1), wo, rule, address, 1)[0]
        gate_and_up = _product(_rms_norm(x, mlp_norm), gate_up, rule, address, 2)  # [2, A, ff]
        gate = gate_and_up[0]
        _gated_relu(gate, gate_and_up[1], zero)
        x += _product(gate, w_down, rule, address, 1)[0]
    logits = _product(_rms_norm(x, final_norm), unembed, rule, address, 1)[0]  # [A, vocab_out]
    out = np.empty(logits.shape, dtype=np.float64)
    _softmax64_rows(logits, out)
    return out


def _weights(plan):
    """(packed, corr, scale) of a planned product (int8_m1.Products), packed for the kernel once."""
    packed = vnni_gemm.packed_for(plan.weights[0][1])
    return packed.packed, packed.corr, plan.scale


class FusedStep:
    """The compiled step's constant arguments for one grower (its weights packed, its products' shapes), and the
    check that a step may take it (`takes`)."""

    def __init__(self, grower):
        params, cfg, names = grower.params, grower.cfg, grower._layer_names
        self.layers = tuple((params[n.attn_norm], params[n.mlp_norm], _weights(grower._planned(n.qkv)),
                             _weights(grower._planned(n.wo)), _weights(grower._planned(n.gate_up)),
                             _weights(grower._planned(n.w_down))) for n in names)
        self.final_norm = params["final_norm"]
        self.unembed = _weights(grower._planned("unembed"))
        rule = grower.rule
        self.rule = (rule.fraction_bits, rule.row_max, rule.halves)
        self.round_kv = rule.rounds(names[0].qkv[1]) and rule.rounds(names[0].qkv[2])
        self.address = vnni_gemm.address()
        d, ff = cfg.d_model, cfg.d_ff
        self.shapes = ((d, 3 * d), (d, d), (d, 2 * ff), (ff, d), (d, cfg.vocab_out))  # (n, m) of each product
        self.attention_scale = np.float32(1.0 / math.sqrt(cfg.head_dim))  # as PrefixRows.extend's dtype(...)
        self._takes = {}  # (EQUALINFO_INT8_GEMM, rows) -> whether every product goes to the kernel

    def takes(self, n_rows):
        """Whether a step of n_rows rows is the fused step's: one thread, and int8_gemm.choose gives the VNNI kernel
        for every product (asked once per environment and row count)."""
        if numba_threads() != 1:
            return False
        key = (os.environ.get(int8_gemm.ENV), n_rows)
        taken = self._takes.get(key)
        if taken is None:
            halves = self.rule[2]
            taken = self._takes[key] = all(int8_gemm.choose(halves * n_rows, n, m) is int8_gemm.VNNI
                                           for n, m in self.shapes)
        return taken


def fused_step(grower):
    """The grower's FusedStep, or None where its M1 cannot take one (not float32, a product over more than one
    K-chunk, no usable VNNI kernel)."""
    cfg = grower.cfg
    if (grower.params["embed"].dtype != np.float32 or max(cfg.d_model, cfg.d_ff) > CHUNK
            or vnni_gemm.address() is None or cfg.d_model % cfg.n_heads):
        return None
    return FusedStep(grower)


def extend(grower, step, slots, inputs):
    """grower.extend(slots, inputs) through the compiled step: the same positions, cache growth and rows."""
    positions, _ = grower._place(slots)
    x = grower.params["embed"][inputs]  # [A, d], a copy the step updates
    return _step(x, slots, positions, step.layers, step.final_norm, step.unembed, tuple(grower.keys),
                 tuple(grower.values), tuple(grower.bias), grower.cfg.n_heads, step.round_kv, step.rule,
                 step.address, step.attention_scale)


class FusedSteps:
    """A grower whose steps go through the compiled step where `FusedStep.takes` them (the rest: its base class)."""

    def extend(self, slots, inputs):
        """The base grower's extend (exact_m1.PrefixRows.extend), in one compiled call where it applies."""
        slots, inputs = np.asarray(slots, dtype=np.int64), np.asarray(inputs, dtype=np.int64)
        step = self.__dict__.get("_fused", False)
        if step is False:
            step = self._fused = fused_step(self)
        if step is not None and len(slots) and step.takes(len(slots)):
            return extend(self, step, slots, inputs)
        return super().extend(slots, inputs)


class Rule3Rows(FusedSteps, int8_m1.PrefixRows):
    """Rule 3's grower (fast/cpu/int8_m1.py) with the compiled step."""


class Rule4Rows(FusedSteps, int8_rows_m1.PrefixRows):
    """Rule 4's grower (fast/cpu/int8_rows_m1.py) with the compiled step."""
