"""Conformance of fast/cpu/transformer.py with ref/transformer.py (docs/design.md "Backends with identical interfaces").

As llm.c's test_gpt2.c checks its C model against PyTorch: the same random parameters and batch go through both
backends, and the logits, the loss and every gradient tensor must agree. In float64 the only differences are rounding
order, so each tensor must match to 1e-9 relative (max abs difference / max abs value); in float32 to float32
tolerances. Shapes cover T <= 16 (exact buckets only), T > 16 (logarithmic buckets), a short max distance (the
clipped last bucket), one head and several, B = 1, T = 1, and padded batches (weight 0 with target -1).
"""
import numpy as np
import pytest
from helpers import perturbed_params, rel_err, training_batch

from equalinfo.fast.cpu import transformer as ft
from equalinfo.ref import transformer as tr


def make_cfg(dtype="float64", **overrides):
    base = dict(vocab_in=11, vocab_out=7, d_model=16, n_heads=4, n_layers=2, d_ff=24, z_loss=0.05, dtype=dtype)
    return tr.Config(**{**base, **overrides})


# (config overrides, B, T): each row exercises a different part of the attention and bucket code
SHAPES = [
    (dict(), 2, 40),  # T > 16: exact and logarithmic buckets
    (dict(num_buckets=8, max_distance=20), 2, 40),  # the clipped last bucket too
    (dict(), 3, 9),  # exact buckets only
    (dict(n_heads=1, d_model=12, d_ff=20, n_layers=1), 1, 23),  # one head, one layer, B = 1
    (dict(n_heads=2, d_model=8, n_layers=3, vocab_in=300, vocab_out=257), 2, 17),  # M1's vocabularies
    (dict(), 2, 1),  # a single position
]
SHAPE_IDS = ["T40", "T40_clipped", "T9", "one_head_B1", "vocab257", "T1"]


@pytest.mark.parametrize("padded", [False, True], ids=["unweighted", "padded"])
@pytest.mark.parametrize("overrides,B,T", SHAPES, ids=SHAPE_IDS)
def test_float64_matches_ref(overrides, B, T, padded):
    cfg = make_cfg(**overrides)
    params = perturbed_params(cfg, 1)
    inputs, targets, weights = training_batch(cfg, 2, B, T, padded)
    before = {name: value.copy() for name, value in params.items()}

    logits = ft.forward(params, cfg, inputs)
    assert logits.shape == (B, T, cfg.vocab_out) and logits.dtype == np.float64
    assert rel_err(logits, tr.forward(params, cfg, inputs)) < 1e-9

    loss, grads = ft.loss_and_grads(params, cfg, inputs, targets, weights)
    ref_loss, ref_grads = tr.loss_and_grads(params, cfg, inputs, targets, weights)
    assert isinstance(loss, float) and abs(loss - ref_loss) <= 1e-9 * abs(ref_loss)
    assert list(grads) == list(params)  # same names, same order
    for name in params:
        assert grads[name].shape == params[name].shape and grads[name].dtype == np.float64, name
        assert rel_err(grads[name], ref_grads[name]) < 1e-9, (name, rel_err(grads[name], ref_grads[name]))
    assert all(np.array_equal(params[name], before[name]) for name in params)  # inputs are not modified


@pytest.mark.parametrize("block", [16, 7, 1])
def test_causal_attention_blocks(monkeypatch, block):
    """The attention products run in blocks of ATTN_BLOCK queries/keys (128); smaller blocks, including ones that
    do not divide T, must give the reference's results, with padding, for logits and every gradient."""
    monkeypatch.setattr(ft, "ATTN_BLOCK", block)
    cfg = make_cfg()
    params = perturbed_params(cfg, 12)
    inputs, targets, weights = training_batch(cfg, 13, 2, 40, padded=True)
    assert rel_err(ft.forward(params, cfg, inputs), tr.forward(params, cfg, inputs)) < 1e-9
    loss, grads = ft.loss_and_grads(params, cfg, inputs, targets, weights)
    ref_loss, ref_grads = tr.loss_and_grads(params, cfg, inputs, targets, weights)
    assert abs(loss - ref_loss) <= 1e-9 * abs(ref_loss)
    for name in params:
        assert rel_err(grads[name], ref_grads[name]) < 1e-9, name


def test_repeated_calls_and_returned_arrays_are_independent():
    """Work buffers are kept between calls: results must not change with the call history, and nothing returned
    may alias them (a second call must not overwrite the first call's gradients or logits)."""
    cfg = make_cfg()
    params = perturbed_params(cfg, 14)
    inputs, targets, weights = training_batch(cfg, 15, 2, 40, padded=True)
    logits = ft.forward(params, cfg, inputs)
    loss, grads = ft.loss_and_grads(params, cfg, inputs, targets, weights)
    kept_logits, kept_grads = logits.copy(), {name: g.copy() for name, g in grads.items()}
    other_inputs, other_targets, _ = training_batch(cfg, 16, 3, 17, padded=False)  # another shape in between
    ft.forward(params, cfg, other_inputs)
    ft.loss_and_grads(params, cfg, other_inputs, other_targets)
    ft.forward(params, cfg, inputs[:, ::-1])  # the same shape, other values
    ft.loss_and_grads(params, cfg, inputs[:, ::-1], targets, weights)
    assert np.array_equal(logits, kept_logits)
    assert all(np.array_equal(grads[name], kept_grads[name]) for name in grads)
    again_loss, again = ft.loss_and_grads(params, cfg, inputs, targets, weights)
    assert again_loss == loss and all(np.array_equal(again[name], grads[name]) for name in grads)
    assert np.array_equal(ft.forward(params, cfg, inputs), logits)
    ft.release_buffers()
    assert np.array_equal(ft.forward(params, cfg, inputs), logits)


@pytest.mark.parametrize("padded", [False, True], ids=["unweighted", "padded"])
def test_input_path_gradient_matches_ref(padded):
    cfg = make_cfg()
    params = perturbed_params(cfg, 3)
    inputs, targets, weights = training_batch(cfg, 4, 2, 40, padded)
    x = params["embed"][inputs]
    loss, grads, dx = ft.loss_and_grads_from_embeddings(params, cfg, x, targets, weights)
    ref_loss, ref_grads, ref_dx = tr.loss_and_grads_from_embeddings(params, cfg, x, targets, weights)
    assert abs(loss - ref_loss) <= 1e-9 * abs(ref_loss)
    assert set(grads) == set(ref_grads) and "embed" not in grads
    assert rel_err(dx, ref_dx) < 1e-9
    for name in grads:
        assert rel_err(grads[name], ref_grads[name]) < 1e-9, name


def test_float32_matches_ref():
    """float32 against ref in float32 (same dtype) and in float64 (the truth): float32 rounding only."""
    cfg64 = make_cfg()
    cfg32 = make_cfg("float32")
    p64 = perturbed_params(cfg64, 5)
    p32 = {name: value.astype(np.float32) for name, value in p64.items()}
    inputs, targets, weights = training_batch(cfg64, 6, 3, 40, padded=True)

    logits = ft.forward(p32, cfg32, inputs)
    assert logits.dtype == np.float32
    assert rel_err(logits, tr.forward(p32, cfg32, inputs)) < 1e-5
    assert rel_err(logits, tr.forward(p64, cfg64, inputs)) < 1e-5

    loss, grads = ft.loss_and_grads(p32, cfg32, inputs, targets, weights)
    loss32, grads32 = tr.loss_and_grads(p32, cfg32, inputs, targets, weights)
    loss64, grads64 = tr.loss_and_grads(p64, cfg64, inputs, targets, weights)
    assert loss == pytest.approx(loss64, rel=1e-5) and loss == pytest.approx(loss32, rel=1e-5)
    for name in p32:
        assert grads[name].dtype == np.float32, name
        assert rel_err(grads[name], grads64[name]) < 1e-4, (name, rel_err(grads[name], grads64[name]))
        assert rel_err(grads[name], grads32[name]) < 1e-4, name


def test_m1_shape_float32_at_length_512():
    """A "tiny" M1 on a full 512-position sequence: the buckets up to the last, at the training length."""
    cfg = tr.make_config("tiny", dtype="float32")
    params = tr.init_params(cfg, 7)
    rng = np.random.default_rng(8)
    inputs = rng.integers(0, cfg.vocab_in, (2, 512))
    targets = rng.integers(0, cfg.vocab_out, (2, 512))
    loss, grads = ft.loss_and_grads(params, cfg, inputs, targets)
    ref_loss, ref_grads = tr.loss_and_grads(params, cfg, inputs, targets)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for name in params:
        assert rel_err(grads[name], ref_grads[name]) < 2e-4, (name, rel_err(grads[name], ref_grads[name]))


def test_embedding_gradient_accumulates_repeated_ids():
    cfg = make_cfg()
    params = perturbed_params(cfg, 9)
    inputs = np.array([[3, 3, 3, 1, 3, 0, 1, 3]])  # repeated ids, and ids that never occur
    targets = np.arange(8)[None] % cfg.vocab_out
    _, grads, dx = ft.loss_and_grads_from_embeddings(params, cfg, params["embed"][inputs], targets)
    _, full = ft.loss_and_grads(params, cfg, inputs, targets)
    for v in range(cfg.vocab_in):
        np.testing.assert_allclose(full["embed"][v], dx[inputs == v].sum(axis=0), rtol=1e-12, atol=1e-15)


def test_integer_weights_and_default_weights():
    cfg = make_cfg()
    params = perturbed_params(cfg, 10)
    inputs, targets, _ = training_batch(cfg, 11, 2, 20, padded=False)
    ones = np.ones(inputs.shape, dtype=np.int64)
    assert ft.loss_and_grads(params, cfg, inputs, targets, ones)[0] == pytest.approx(
        ft.loss_and_grads(params, cfg, inputs, targets)[0], rel=1e-15)


def bad_calls(cfg, params):
    """(description, function of a backend module) for every bad input the reference rejects."""
    good_in = np.zeros((1, 3), int)
    good_tg = np.zeros((1, 3), int)
    return [
        ("input id too large", lambda m: m.forward(params, cfg, np.array([[0, cfg.vocab_in]]))),
        ("negative input id", lambda m: m.loss_and_grads(params, cfg, np.array([[0, -1, 2]]), good_tg)),
        ("1-D inputs", lambda m: m.forward(params, cfg, np.array([1, 2]))),
        ("empty time axis", lambda m: m.forward(params, cfg, np.zeros((2, 0), int))),
        ("float inputs", lambda m: m.forward(params, cfg, np.zeros((1, 3)))),
        ("target too large", lambda m: m.loss_and_grads(params, cfg, good_in, np.array([[0, 1, cfg.vocab_out]]))),
        ("weighted negative target", lambda m: m.loss_and_grads(params, cfg, good_in, np.array([[0, -1, 1]]))),
        ("target shape", lambda m: m.loss_and_grads(params, cfg, good_in, np.zeros((1, 4), int))),
        ("weight shape", lambda m: m.loss_and_grads(params, cfg, good_in, good_tg, np.ones((2, 3)))),
        ("negative weight", lambda m: m.loss_and_grads(params, cfg, good_in, good_tg, np.array([[1, -1, 1]]))),
        ("nan weight", lambda m: m.loss_and_grads(params, cfg, good_in, good_tg, np.array([[1, np.nan, 1]]))),
        ("zero total weight", lambda m: m.loss_and_grads(params, cfg, good_in, good_tg, np.zeros((1, 3)))),
        ("float32 params, float64 config",
         lambda m: m.forward({n: v.astype(np.float32) for n, v in params.items()}, cfg, good_in)),
        ("float32 params in the loss",
         lambda m: m.loss_and_grads({n: v.astype(np.float32) for n, v in params.items()}, cfg, good_in, good_tg)),
    ]


def test_bad_inputs_raise_the_same_errors_as_ref():
    cfg = make_cfg()
    params = tr.init_params(cfg, 0)
    for description, call in bad_calls(cfg, params):
        with pytest.raises(Exception) as ref_error:
            call(tr)
        with pytest.raises(Exception) as fast_error:
            call(ft)
        assert type(fast_error.value) is type(ref_error.value), description
        assert str(fast_error.value) == str(ref_error.value), description


def test_shared_definitions_are_ref_s():
    """Config, sizes, initialisation and counting are ref's own objects, not copies that could drift."""
    for name in ("Config", "SIZES", "make_config", "init_params", "count_params", "flops_per_token", "param_shapes",
                 "check_params", "relative_position_bucket", "bucket_table"):
        assert getattr(ft, name) is getattr(tr, name), name
    from equalinfo.fast.cpu import kernels_nn
    assert kernels_nn.RMS_EPS == tr.RMS_EPS


def test_results_do_not_depend_on_the_thread_count(monkeypatch):
    """The kernels' cross-row sums use fixed chunks, so one Numba thread and several give the same logits, gradients
    and optimizer updates. PARALLEL_MIN_ELEMENTS = 0 makes even this small problem run its kernels in parallel.
    set_threads sets OpenBLAS's threads too (the CLI's --threads). (Equality is asserted to 1e-12, not bit for bit:
    BLAS may round its products differently between calls and thread counts.)"""
    import numba

    from equalinfo.fast.cpu import kernels_nn
    from equalinfo.fast.cpu import optim as fo
    from equalinfo.fast.cpu.threads import blas_threads, set_threads

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has one thread only")
    monkeypatch.setattr(kernels_nn, "PARALLEL_MIN_ELEMENTS", 0)
    cfg = make_cfg(d_model=32, n_heads=2, d_ff=40)
    params = perturbed_params(cfg, 17)
    inputs, targets, weights = training_batch(cfg, 18, 3, 150, padded=True)
    results = []
    for threads in (1, 2):
        set_threads(threads)
        assert numba.get_num_threads() == threads and blas_threads() in (threads, None)
        try:
            logits = ft.forward(params, cfg, inputs)
            loss, grads = ft.loss_and_grads(params, cfg, inputs, targets, weights)
            opt = fo.Adafactor(min_dim_size_to_factor=16, clip_norm=0.1)
            new_params, state = opt.update(params, grads, opt.init(params), 0)
        finally:
            set_threads(numba.config.NUMBA_NUM_THREADS)
        results.append((logits, loss, grads, new_params, state))
    (l1, loss1, g1, p1, s1), (l2, loss2, g2, p2, s2) = results
    assert rel_err(l1, l2) < 1e-12 and loss1 == pytest.approx(loss2, rel=1e-13)
    for first, second in ((g1, g2), (p1, p2), (s1, s2)):
        worst = {key: rel_err(first[key], second[key]) for key in first}
        assert max(worst.values()) < 1e-12, worst
