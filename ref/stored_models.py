"""A model rebuilt from its kind and its stored arrays: the one place that knows every kind of coding model.

Compressed files and model files store a model as (kind, dict of arrays); this module turns them back into a
model. It sits above models.py and m1.py (both kinds' modules), so neither needs to import the other.
"""
from equalinfo.ref.m1 import TransformerModel
from equalinfo.ref.models import MarkovModel, ModelError, UnigramModel


def model_from_arrays(kind, arrays):
    """Rebuild a model from its kind and arrays (as stored in a compressed file or a model file)."""
    try:
        if kind == UnigramModel.kind:
            return UnigramModel(arrays["counts"])
        if kind == MarkovModel.kind:
            return MarkovModel(int(arrays["order"]), arrays["context_ids"], arrays["counts"])
        if kind == TransformerModel.kind:
            return TransformerModel.from_arrays(arrays)
    except KeyError as missing:
        raise ModelError(f"{kind} model is missing its array {missing}") from None
    raise ModelError(f"unknown model kind {kind!r}")
