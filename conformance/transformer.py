"""Family `transformer`: a small float64 Transformer's logits, loss (with z-loss) and every gradient, and one
Adafactor and one AdamW step, each compared within a stated tolerance (llm.c's test_gpt2.c pattern).

The config covers every part of the architecture at toy size: two layers, two heads, 8 relative-position buckets
with max distance 12 and T = 19 (exact, logarithmic and clipped buckets), padding with weight 0 and a z-loss large
enough to matter. Parameters are the seeded init with perturbed norm scales. The optimizer steps start from the
vector's own gradients and a given non-zero state at a given step; Adafactor factors every matrix with both
dimensions >= 8, AdamW's global-norm clipping binds.

Tolerance: max |got - want| <= tol * max |want| per tensor. Float64 rounding in another summation order leaves
about 1e-15 relative; the stated tolerances leave room for any correct order and catch any wrong formula.
"""
import numpy as np

from equalinfo.conformance.tally import Within

NAME = "transformer"
SEED = 1406
CONFIG = dict(vocab_in=11, vocab_out=7, d_model=16, n_heads=2, n_layers=2, d_ff=24, num_buckets=8, max_distance=12,
              z_loss=0.05, dtype="float64")
B, T = 2, 19
TOLERANCE = {"logits": 1e-9, "loss": 1e-9, "grads": 1e-9, "adafactor": 1e-9, "adamw": 1e-9}
ADAFACTOR = dict(base_lr=0.1, warmup_steps=10, min_dim_size_to_factor=8)
ADAMW = dict(peak_lr=0.01, warmup_steps=2, total_steps=10, clip_norm=0.5)
STEPS = {"adafactor": 3, "adamw": 4}


def _setup():
    from equalinfo.ref import transformer

    cfg = transformer.Config(**CONFIG)
    params = transformer.init_params(cfg, SEED)
    rng = np.random.default_rng(SEED)
    for name in params:
        if name.endswith("norm"):
            params[name] = 1.0 + 0.3 * rng.standard_normal(params[name].shape)
    inputs = rng.integers(0, cfg.vocab_in, (B, T))
    targets = rng.integers(0, cfg.vocab_out, (B, T))
    weights = np.ones((B, T))
    weights[1, 13:] = 0.0  # padding
    targets[1, 13:] = 0
    return cfg, params, inputs, targets, weights


def _state(optimizer, params, rng):
    """A non-zero optimizer state: second moments positive, first moments signed."""
    state = optimizer.init(params)
    for key, value in state.items():
        draw = rng.standard_normal(value.shape)
        state[key] = 0.01 * draw if key.startswith("m/") else 1e-3 * (draw * draw + 0.1)
    return state


def _optimizers(optim):
    return {"adafactor": optim.Adafactor(**ADAFACTOR), "adamw": optim.AdamW(**ADAMW)}


def build():
    from equalinfo.ref import optim, transformer

    cfg, params, inputs, targets, weights = _setup()
    loss, grads = transformer.loss_and_grads(params, cfg, inputs, targets, weights)
    arrays = {"inputs": inputs, "targets": targets, "weights": weights,
              "logits": transformer.forward(params, cfg, inputs), "loss": np.array(loss)}
    arrays.update({f"param.{n}": v for n, v in params.items()})
    arrays.update({f"grad.{n}": v for n, v in grads.items()})
    rng = np.random.default_rng(SEED + 1)
    optimizers, described = _optimizers(optim), {}
    for kind, optimizer in optimizers.items():
        state = _state(optimizer, params, rng)
        new_params, new_state = optimizer.update(params, grads, state, STEPS[kind])
        arrays.update({f"{kind}.state.{k}": v for k, v in state.items()})
        arrays.update({f"{kind}.new_param.{n}": v for n, v in new_params.items()})
        arrays.update({f"{kind}.new_state.{k}": v for k, v in new_state.items()})
        described[kind] = {"config": optimizer.config(), "step": STEPS[kind], "learning_rate":
                           optimizer.learning_rate(STEPS[kind]), "state_names": list(state)}
    norm = optim.global_norm(grads)
    assert norm > ADAMW["clip_norm"], "the vector should exercise AdamW's clipping"
    described["adamw"]["gradient_global_norm"] = norm
    described["adafactor"]["factored"] = [n for n, v in params.items() if optimizers["adafactor"].is_factored(v.shape)]
    description = {
        "family": NAME,
        "config": CONFIG,
        "param_names": list(params),
        "tolerance": TOLERANCE,
        "tolerance_rule": "max |got - want| <= tolerance * max |want| over each tensor",
        "optimizers": described,
        "arrays": {"param.NAME": "<f8 parameters", "inputs": "<i8 [B, T]", "targets": "<i8 [B, T]",
                   "weights": "<f8 [B, T] loss weights (0 = padding)", "logits": "<f8 [B, T, vocab_out]",
                   "loss": "<f8 [] cross-entropy + z-loss", "grad.NAME": "<f8 d loss / d parameter",
                   "OPT.state.KEY": "<f8 optimizer state before the step (KEY as in state_names)",
                   "OPT.new_param.NAME": "<f8 parameters after one step", "OPT.new_state.KEY": "<f8 state after"},
    }
    return description, arrays


def check(description, arrays, impl, tally):
    from equalinfo.ref.transformer import Config

    cfg = Config(**description["config"])
    tolerance = description["tolerance"]
    names = description["param_names"]
    params = {n: arrays[f"param.{n}"] for n in names}
    inputs, targets, weights = arrays["inputs"], arrays["targets"], arrays["weights"]
    got = tally.call("forward", "forward", impl.transformer.forward, params, cfg, inputs)
    if got is not None:
        tally.close(impl_host(got), arrays["logits"], tolerance["logits"], "forward", "logits")
    result = tally.call("loss", "loss_and_grads", impl.transformer.loss_and_grads, params, cfg, inputs, targets,
                        weights)
    if result is not None:
        loss, grads = result
        tally.close(loss, arrays["loss"], tolerance["loss"], "loss", "loss")
        for name in names:
            tally.close(impl_host(grads[name]), arrays[f"grad.{name}"], tolerance["grads"], "gradients", name)
    grads = {n: arrays[f"grad.{n}"] for n in names}
    for kind, spec in description["optimizers"].items():
        optimizer = tally.call(kind, "from_config", impl.optim.from_config, spec["config"])
        if optimizer is None:
            continue
        state = {k: arrays[f"{kind}.state.{k}"] for k in spec["state_names"]}
        result = tally.call(kind, "update", optimizer.update, params, grads, state, spec["step"])
        if result is None:
            continue
        new_params, new_state = result
        for name in names:
            tally.close(impl_host(new_params[name]), arrays[f"{kind}.new_param.{name}"], tolerance[kind], kind,
                        f"new {name}")
        for key in spec["state_names"]:
            tally.close(impl_host(new_state[key]), arrays[f"{kind}.new_state.{key}"], tolerance[kind], kind,
                        f"new state {key}")


def impl_host(array):
    """A NumPy copy of a backend's array (the gpu backend may return CuPy arrays)."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


# --------------------------------------------------------------- the --implementation protocol (protocol.py)

def request(description, arrays):
    """(description, arrays, expected): the parameters, batch, gradients and optimizer states without the results;
    the answers (same names, each within its tolerance) are logits, loss, grad.NAME, OPT.new_param.NAME and
    OPT.new_state.KEY. The gradients stay in the request: each optimizer step starts from the vector's own."""
    tolerance = description["tolerance"]
    expected = {"logits": Within(arrays["logits"], tolerance["logits"]),
                "loss": Within(arrays["loss"], tolerance["loss"])}
    expected.update({key: Within(value, tolerance["grads"]) for key, value in arrays.items()
                     if key.startswith("grad.")})
    for kind in description["optimizers"]:
        expected.update({key: Within(value, tolerance[kind]) for key, value in arrays.items()
                         if key.startswith((f"{kind}.new_param.", f"{kind}.new_state."))})
    asked = {key: value for key, value in arrays.items() if key not in expected or key.startswith("grad.")}
    return description, asked, expected


def answer(description, arrays, impl):
    from equalinfo.ref.transformer import Config

    cfg, names = Config(**description["config"]), description["param_names"]
    params = {name: arrays[f"param.{name}"] for name in names}
    inputs, targets, weights = arrays["inputs"], arrays["targets"], arrays["weights"]
    loss, grads = impl.transformer.loss_and_grads(params, cfg, inputs, targets, weights)
    answers = {"logits": impl_host(impl.transformer.forward(params, cfg, inputs)), "loss": float(loss)}
    answers.update({f"grad.{name}": impl_host(grads[name]) for name in names})
    given = {name: arrays[f"grad.{name}"] for name in names}
    for kind, spec in description["optimizers"].items():
        state = {key: arrays[f"{kind}.state.{key}"] for key in spec["state_names"]}
        new_params, new_state = impl.optim.from_config(spec["config"]).update(params, given, state, spec["step"])
        answers.update({f"{kind}.new_param.{name}": impl_host(new_params[name]) for name in names})
        answers.update({f"{kind}.new_state.{key}": impl_host(new_state[key]) for key in spec["state_names"]})
    return answers
