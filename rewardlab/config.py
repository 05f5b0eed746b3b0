"""Training recipes: YAML files plus ``section.key=value`` overrides, checked at load time.

Every field is documented once, by the string under it; that text is also the CLI help
(``rewardlab train --help``). Unknown keys are rejected with the close name; bad combinations are
rejected in ``__post_init__`` naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rewardlab.choices import DTYPES, ENSEMBLE_REDUCTIONS


class ConfigError(ValueError):
    """A recipe that cannot be used: unknown key, wrong type, bad combination."""


@dataclass
class ModelConfig:
    path: str = "smollm2"
    """Base model: a local directory, a hub id, or an embedded alias (``smollm2``, ``minilm``)."""
    head: str = "linear"
    """Reward head: ``linear`` (loads with stock transformers) or ``mlp``."""
    mlp_hidden: list[int] = field(default_factory=lambda: [256])
    """Hidden widths of the MLP head (1 or 2 layers, ReLU)."""
    num_layers: int = 0
    """Use only the first N transformer blocks of the base model (0: all of them): the head reads block N's
    output, and the backbone costs about N/total of its full depth. The checkpoint is a model of N blocks
    (stock transformers loads it as such). Scalar reward models only."""
    pooling: str = "last"
    """What the head reads: ``last`` (the final hidden state at the conversation's last token, as stock
    transformers reads it) or ``mean`` (averaged over every token; scalar decoder RMs only, no stock form,
    trains without forked prompts). On frozen SmolLM2 features ``mean`` is the stronger one:
    ``experiments/rm_table``."""
    lora_r: int = 0
    """LoRA rank; 0 trains the whole backbone (unless the variant freezes it)."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input."""
    lora_targets: str = "all-linear"
    """Modules LoRA adapts: ``all-linear`` or a comma-separated list of module names."""
    train_layers: int = 0
    """Train only the last N transformer blocks (their LoRA adapters, or their weights without LoRA) and the
    head; the embeddings and the blocks below stay frozen, so backpropagation stops early (0: all blocks).
    A cheap middle ground between a frozen backbone and full training."""
    merge_lora: bool = True
    """Write ``final/`` as a merged plain model (else adapter + head + base name)."""
    trust_checkpoint: bool = False
    """Allow pickle weights and remote code in the base checkpoint (unsafe: runs its code)."""


@dataclass
class DataConfig:
    train: str = ""
    """Training preference data: .jsonl[.gz], .json, .parquet, a datasets directory or hub id."""
    eval: str = ""
    """Held-out pairs; empty means: hold out ``eval_size`` pairs of ``train``."""
    format: str = "auto"
    """Record format: auto, explicit, implicit, hh, rewardbench."""
    lenient: bool = False
    """Drop bad records with a counted report instead of stopping at the first one."""
    train_limit: int = 0
    """Read at most this many pairs from ``train`` (0: all); applied before ``eval_size`` pairs are held out."""
    eval_size: int = 0
    """Pairs held out from ``train`` when ``eval`` is empty (0: no evaluation), or the cap on ``eval``."""
    max_length: int = 512
    """Token limit per sequence (prompt + response); longer ones are truncated, prompt from the left first."""
    min_prompt_tokens: int = 32
    """Truncation keeps at least this many prompt tokens before cutting the response."""
    bon_pairs: str = ""
    """Instead of ``train`` / ``eval``: a best-of-n file with gold judgements (AlpacaEval best-of-16 shape)
    made into pairs as ``rewardlab pairs`` does (``rewardlab.data.bon_pairs``): the training split trains
    (``train_limit``: its first N pairs, whole instructions), the held-out one is the eval set, the OOD one
    a second eval set ``ood`` (``eval_size`` caps each, one pair per instruction in turn)."""
    bon_min_gap: float = 0.5
    """With ``bon_pairs``: the smallest gold-score gap that makes a pair (its margin is the gap)."""
    bon_heldout_fraction: float = 0.3
    """With ``bon_pairs``: fraction of the in-distribution instructions held out (the eval set)."""
    bon_id_sources: list[str] = field(default_factory=lambda: ["selfinstruct", "oasst", "helpful_base"])
    """With ``bon_pairs``: in-distribution sources (the records' ``dataset`` field): train and held-out."""
    bon_ood_sources: list[str] = field(default_factory=lambda: ["koala", "vicuna"])
    """With ``bon_pairs``: out-of-distribution sources, only evaluated (``[]``: none)."""
    bon_split_seed: int = 0
    """With ``bon_pairs``: seed of the split of instructions (training seeds vary the model, not the split)."""
    bon_train_instructions: int = 0
    """With ``bon_pairs``: train on every pair of the first N training instructions (0: ``train_limit`` decides).
    Each instruction's texts make all its pairs, so with a frozen backbone this buys pairs at no backbone cost."""
    bon_eval_instructions: int = 0
    """With ``bon_pairs``: evaluate on every pair of the first N held-out instructions and of the first N OOD
    ones, instead of ``eval_size`` pairs spread one per instruction (0: ``eval_size`` decides)."""


@dataclass
class TrainConfig:
    epochs: float = 1.0
    """Passes over the training pairs (ignored when ``max_steps`` > 0)."""
    max_steps: int = 0
    """Optimizer steps; 0 means: use ``epochs``."""
    batch_size: int = 8
    """Pairs per device per step (each pair is two sequences)."""
    grad_accum: int = 1
    """Gradient accumulation steps (global batch = batch_size x grad_accum x processes)."""
    lr: float = 1e-4
    """Peak learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_ratio: float = 0.03
    """Fraction of steps with linear warm-up."""
    scheduler: str = "cosine"
    """Learning-rate schedule: a transformers scheduler name (linear, cosine, constant, ...)."""
    seed: int = 42
    """Seed for initialisation, data order and the held-out split."""
    dtype: str = "float32"
    """Training precision: float32, bfloat16 (mixed precision, weights kept in fp32), or auto (bfloat16
    where a short matmul measurement on the training device says it is faster, cached per machine;
    float32 elsewhere; see ``rewardlab dtype``). metrics.json's train.dtype names the one used."""
    packing: bool = True
    """Padding-free batches for decoder models where they pay: on a CPU (attention per sequence), and
    on a GPU whose torch has flex attention (one block-masked kernel per layer); a GPU without it gets
    length-grouped padded batches (``rewardlab.models.batching.choose_layout``). Encoders always pad;
    false pads everywhere."""
    fork_prompts: bool = True
    """With packing: run each pair's shared prompt once, the rejected response seeing only the prompt
    and itself. Same rewards and gradients, fewer tokens (Bradley-Terry variants; GRM batches don't)."""
    group_by_length: bool = True
    """Batch pairs of similar length together (less padding, faster)."""
    logging_steps: int = 5
    """Log the loss every this many steps (and at every checkpoint, so a resumed run's loss is whole)."""
    eval_steps: int = 0
    """Evaluate on the held-out pairs every this many steps (0: only at the end)."""
    save_steps: int = 0
    """Write a resumable checkpoint every this many steps (0: none)."""
    save_total_limit: int = 2
    """Keep at most this many checkpoints."""
    resume: bool = True
    """Resume from the latest checkpoint in ``output_dir`` whose files are whole, when there is one (a
    damaged newer one is passed over with a warning)."""
    feature_batch_tokens: int = 8192
    """Token budget per forward pass when caching frozen-backbone features and when evaluating."""
    feature_cache: bool = True
    """Frozen backbones (``bt_frozen``): keep each unique sequence's features on disk for later runs (other
    heads, seeds, sizes, evaluation); false: in memory, this run only. ``rewardlab.models.feature_cache``."""
    feature_cache_dir: str = ""
    """Where ``feature_cache`` keeps features; empty: ``rewardlab.models.feature_cache.default_root()``."""
    ensemble: int = 1
    """Members of a reward-model ensemble: k > 1 trains k models with seeds seed, seed+1, ... into
    ``output_dir/member-i/`` and writes ``output_dir/ensemble.json``, which loads as one Scorer."""
    ensemble_reduction: str = "mean"
    """How the ensemble combines member rewards: ``mean``, ``min`` (worst case) or ``mean_minus_std``."""
    ensemble_lambda: float = 1.0
    """λ of ``mean_minus_std``: reward = mean − λ·std over members (uncertainty-weighted)."""


@dataclass
class VariantConfig:
    name: str = "bt"
    """Reward-model variant, by its registered name (``rewardlab variants`` lists them with their options)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Variant options, written as ``variant.<option>=value`` (e.g. ``variant.label_smoothing=0.1``)."""


@dataclass
class Recipe:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    variant: VariantConfig = field(default_factory=VariantConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = "runs/rm"
    """Where ``final/``, ``metrics.json`` and checkpoints are written."""

    def __post_init__(self) -> None:
        from rewardlab.variants import make_variant

        for bad, message in self._problems():
            if bad:
                raise ConfigError(message)
        try:
            variant = make_variant(self.variant.name, self.variant.options)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(str(e)) from None
        if self.data.format != "auto":
            from rewardlab.data.formats import get_format

            try:
                get_format(self.data.format)
            except KeyError as e:
                raise ConfigError(f"data.format: {e}") from None
        if variant.is_generative and self.train.ensemble > 1:
            raise ConfigError(f"variant {self.variant.name!r} is a generative judge; train.ensemble must be 1")
        if variant.frozen_backbone and self.model.lora_r:
            raise ConfigError(f"variant {self.variant.name!r} freezes the backbone; model.lora_r must be 0")
        if self.model.num_layers and (variant.is_generative or variant.has_lm_head):
            raise ConfigError(f"model.num_layers is for scalar reward models; variant {self.variant.name!r} needs "
                              "the whole language model (set model.num_layers: 0)")
        if self.model.pooling != "last" and (variant.is_generative or variant.has_lm_head):
            raise ConfigError(f"model.pooling: {self.model.pooling!r} is for scalar reward heads; variant "
                              f"{self.variant.name!r} reads its model another way (use 'last')")

    def _problems(self) -> list[tuple[bool, str]]:
        """(is it wrong, what to tell the user) for each single-key or cross-key check."""
        m, d, t = self.model, self.data, self.train
        return [
            (not d.train and not d.bon_pairs,
             "data.train is required: a preference data file, directory or dataset id (or data.bon_pairs)"),
            (bool(d.bon_pairs and (d.train or d.eval)),
             "data.bon_pairs makes the training and eval pairs: leave data.train and data.eval empty"),
            *((True, f"data.bon_{p}") for p in (_bon_problems(d) if d.bon_pairs else [])),
            (d.bon_train_instructions < 0 or d.bon_eval_instructions < 0,
             "data.bon_train_instructions and data.bon_eval_instructions must be >= 0 (0: not used)"),
            (bool(d.bon_eval_instructions and d.eval_size),
             "data.bon_eval_instructions and data.eval_size both cap the eval sets: set one of them"),
            (m.head not in ("linear", "mlp"), f"model.head must be 'linear' or 'mlp', got {m.head!r}"),
            (m.pooling not in ("last", "mean"), f"model.pooling must be 'last' or 'mean', got {m.pooling!r}"),
            (m.num_layers < 0, f"model.num_layers must be >= 0 (0: every block), got {m.num_layers}"),
            (m.head == "mlp" and not (1 <= len(m.mlp_hidden) <= 2 and min(m.mlp_hidden, default=0) >= 1),
             f"model.mlp_hidden must list 1 or 2 positive widths, got {m.mlp_hidden}"),
            (m.lora_r < 0, f"model.lora_r must be >= 0 (0 disables LoRA), got {m.lora_r}"),
            (m.train_layers < 0, f"model.train_layers must be >= 0 (0: all blocks), got {m.train_layers}"),
            (not 0.0 <= m.lora_dropout < 1.0, f"model.lora_dropout must be in [0, 1), got {m.lora_dropout}"),
            (t.dtype not in DTYPES,
             f"train.dtype must be 'auto', 'float32' or 'bfloat16', got {t.dtype!r}"),
            (t.batch_size < 1 or t.grad_accum < 1, "train.batch_size and train.grad_accum must be >= 1"),
            (t.lr <= 0, f"train.lr must be > 0, got {t.lr}"),
            (t.ensemble < 1, f"train.ensemble must be >= 1 (1: a single model), got {t.ensemble}"),
            (t.ensemble_reduction not in ENSEMBLE_REDUCTIONS,
             f"train.ensemble_reduction must be mean, min or mean_minus_std, got {t.ensemble_reduction!r}"),
            (t.ensemble_lambda < 0, f"train.ensemble_lambda must be >= 0, got {t.ensemble_lambda}"),
            (not 0.0 <= t.warmup_ratio < 1.0, f"train.warmup_ratio must be in [0, 1), got {t.warmup_ratio}"),
            (t.max_steps < 0, f"train.max_steps must be >= 0, got {t.max_steps}"),
            (t.max_steps == 0 and t.epochs <= 0, f"train.epochs must be > 0 when train.max_steps is 0, got {t.epochs}"),
            (d.max_length < 8, f"data.max_length={d.max_length} is too small"),
            (not 0 <= d.min_prompt_tokens < d.max_length,
             f"data.min_prompt_tokens={d.min_prompt_tokens} must be >= 0 and < data.max_length={d.max_length}"),
        ]


def _bon_problems(d: DataConfig) -> list[str]:
    from rewardlab.data.bon_pairs import settings_problems
    return settings_problems(d.bon_min_gap, d.bon_heldout_fraction, d.bon_id_sources, d.bon_ood_sources)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


def _coerce(value: Any, default: Any, key: str) -> Any:
    """Convert an override string (or YAML value) to the type of the field's default."""
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}: cannot parse {value!r} ({e})") from None
    if isinstance(default, float) and isinstance(value, str):
        try:  # YAML 1.1 reads "3e-4" as a string
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
    elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif isinstance(default, int) and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif isinstance(default, float) and not isinstance(value, float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    elif isinstance(default, list):
        value = value if isinstance(value, list) else [value]
        if default:  # elements take the type of the default's elements
            value = [_coerce(v, default[0], f"{key}[{i}]") for i, v in enumerate(value)]
    elif isinstance(default, str) and not isinstance(value, str):
        value = str(value)
    return value


def _unknown(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown recipe key '{key}'{hint}")


def _flatten(raw: dict, where: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, body in raw.items():
        if section == "output_dir":
            flat["output_dir"] = body
        elif isinstance(body, dict):
            for k, v in body.items():
                if section == "variant" and k == "options" and isinstance(v, dict):
                    flat.update({f"variant.{ok}": ov for ok, ov in v.items()})
                else:
                    flat[f"{section}.{k}"] = v
        elif section in (*SECTIONS, "variant"):
            raise ConfigError(f"{where}: '{section}' must be a mapping of keys")
        else:
            raise _unknown(section, [*SECTIONS, "variant", "output_dir"])
    return flat


def all_keys() -> list[str]:
    keys = [f"{s}.{f.name}" for s, c in SECTIONS.items() for f in dataclasses.fields(c)]
    return [*keys, "variant.name", "output_dir"]


def load_recipe(path: str | Path | None, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe, apply ``section.key=value`` overrides, validate, return a :class:`Recipe`.
    Variants added from outside (``REWARDLAB_PLUGINS``, :mod:`rewardlab.plugins`) are imported first."""
    from rewardlab.plugins import load_plugins

    load_plugins()
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"recipe {p} does not exist")
        raw = yaml.safe_load(p.read_text()) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a recipe must be a mapping")
    flat = _flatten(raw, str(path))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        k, v = item.split("=", 1)
        flat[k.strip()] = v
    return build_recipe(flat)


def build_recipe(flat: dict[str, Any]) -> Recipe:
    known = all_keys()
    sections: dict[str, dict] = {s: {} for s in SECTIONS}
    variant = VariantConfig()
    output_dir = Recipe.output_dir
    for key, value in flat.items():
        section, _, name = key.partition(".")
        if key == "output_dir":
            output_dir = str(value)
        elif key == "variant.name":
            variant.name = str(value)
        elif section == "variant" and name:
            variant.options[name] = value
        elif section in SECTIONS and name in {f.name for f in dataclasses.fields(SECTIONS[section])}:
            default = getattr(SECTIONS[section](), name)
            sections[section][name] = _coerce(value, default, key)
        else:
            raise _unknown(key, known)
    variant.options = _variant_options(variant.name, variant.options)
    try:
        return Recipe(model=ModelConfig(**sections["model"]), data=DataConfig(**sections["data"]),
                      variant=variant, train=TrainConfig(**sections["train"]), output_dir=output_dir)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


def _variant_options(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Coerce ``variant.*`` values to the types of the variant's option defaults ('1e-1' is a float).

    Unknown variants and options are left for :func:`rewardlab.variants.make_variant` to report."""
    from rewardlab.variants import VARIANTS

    defaults = {}
    if name in VARIANTS:
        defaults = {f.name: f.default for f in dataclasses.fields(VARIANTS.get(name))
                    if f.default is not dataclasses.MISSING}
    out = {}
    for k, v in raw.items():
        if k in defaults:
            out[k] = _coerce(v, defaults[k], f"variant.{k}")
        else:
            out[k] = yaml.safe_load(v) if isinstance(v, str) else v
    return out


def recipe_to_dict(recipe: Recipe) -> dict:
    return dataclasses.asdict(recipe)
