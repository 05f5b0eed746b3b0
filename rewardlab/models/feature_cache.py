"""An on-disk cache of frozen-backbone features: every unique token sequence runs through the backbone once.

A frozen backbone's feature for a sequence is a function of the backbone (weights and architecture),
the token ids it reads, the precision it computes in and the pooling, and of nothing else. So the key:

- **Directory** ``<root>/<model key>/`` (root: :func:`default_root`, or ``train.feature_cache_dir``).
  The model key is a sha256 over the backbone's class, its config (minus names, paths, dtype, padding
  and head fields, which change no feature), the sha256 of the bytes of every backbone tensor (an
  exact content hash, not a fingerprint of file sizes or dates: 0.75 s for SmolLM2-135M's 540 MB on
  2 cores; the reward head is not in it, so every head on one backbone shares the directory, and a
  frozen-backbone checkpoint finds the features its training computed), the compute dtype, the
  pooling and :data:`FEATURES_VERSION`. ``meta.json`` there records them readably.
- **Entry**: the sha256 of the token ids. The ids carry the tokenizer, chat template, text,
  ``max_length`` and truncation policy: a change to any of them that changes an id is a miss, and one
  that changes no id cannot change the feature, so none of them is keyed apart. The device is not in
  the key: CPU and GPU features agree within float tolerance.

Pooling: ``last`` is the final hidden state at the last real token of a decoder (an encoder's own pooled
output); ``mean`` averages the final hidden states over every real token, prompt and response. They are
the two poolings a reward head can read (``model.pooling``, :class:`rewardlab.models.scalar.HeadConfig`);
training from a recipe caches the one its head reads, and a checkpoint scores through
:class:`CachedScorer` with its own pooling.

Layout and invalidation: shards ``shard-<uuid>.safetensors`` hold ``keys`` ``(n, 32)`` uint8 and
``features`` ``(n, hidden)`` float32, with a sha256 of both in their metadata. Each is written under a
temporary name and renamed, every :data:`SHARD_SIZE` new sequences, so an interrupted extraction keeps
what it finished and concurrent writers never share a file. A shard that does not read back or fails
its checksum is logged, deleted and its sequences computed again. Other weights, dtype or pooling make
another directory and nothing is overwritten; delete a directory to reclaim its space.
:data:`FEATURES_VERSION` goes up whenever the code changes what a feature is for the same ids (the
read position, the pooling), which retires every older directory.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rewardlab import jsonout
from rewardlab.models.batching import forward_batches, hidden_states, length_batches
from rewardlab.models.scalar import backbone_of, head_of, pooling_of, reads_last_token
from rewardlab.models.scorer import PairScoringMixin, ScalarScorer
from rewardlab.precision import compute_dtype
from rewardlab.types import Conversation

FEATURES_VERSION = 1
"""What a feature means for given ids; bump it when that changes (every older directory then misses)."""
SHARD_SIZE = 1024
"""New sequences per shard written during an extraction."""
POOLINGS = ("last", "mean")
# Config fields that name, place or label a model, or set padding and the head: no feature depends on them.
_NOT_FEATURES = frozenset({"architectures", "rewardlab", "pad_token_id", "id2label", "label2id", "num_labels",
                           "problem_type", "torch_dtype", "dtype", "transformers_version", "use_cache"})

log = logging.getLogger("rewardlab")


def default_root() -> Path:
    """``$REWARDLAB_FEATURE_CACHE`` when set, else ``features/`` in rewardlab's cache directory
    (``$REWARDLAB_CACHE``, or ``~/.cache/rewardlab``)."""
    import os

    from rewardlab.assets import cache_dir

    return Path(os.environ.get("REWARDLAB_FEATURE_CACHE") or cache_dir() / "features")


def weights_sha256(module: nn.Module) -> str:
    """sha256 over the names, shapes, dtypes and bytes of every tensor of ``module``'s state dict."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}\n".encode())
        flat = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(memoryview(flat.view(torch.uint8).numpy()))
    return h.hexdigest()


def model_key(model: nn.Module, pooling: str = "last") -> tuple[str, dict]:
    """The directory name of ``model``'s features and what it was made of (see the module docstring)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    backbone = backbone_of(model)
    config = {k: v for k, v in model.config.to_dict().items() if k not in _NOT_FEATURES and not k.startswith("_")}
    made_of = {"version": FEATURES_VERSION, "backbone": type(backbone).__name__, "config": config,
               "weights_sha256": weights_sha256(backbone), "dtype": str(compute_dtype(model)), "pooling": pooling}
    key = hashlib.sha256(jsonout.dumps(made_of, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return key, {**made_of, "model": str(getattr(model.config, "_name_or_path", ""))}


def sequence_key(ids: Sequence[int]) -> bytes:
    """The 32-byte digest an entry is stored under: sha256 of the ids as int64."""
    return hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).digest()


def _checksum(keys: torch.Tensor, features: torch.Tensor) -> str:
    h = hashlib.sha256(keys.numpy().tobytes())
    h.update(features.numpy().tobytes())
    return h.hexdigest()


def _read_shard(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        keys, features = fh.get_tensor("keys"), fh.get_tensor("features")
    if keys.dtype != torch.uint8 or keys.ndim != 2 or keys.shape[1] != 32:
        raise ValueError(f"keys have shape {tuple(keys.shape)} and dtype {keys.dtype}, expected (n, 32) uint8")
    if features.ndim != 2 or features.shape[0] != keys.shape[0] or features.dtype != torch.float32:
        raise ValueError(f"features have shape {tuple(features.shape)} for {keys.shape[0]} keys")
    if meta.get("sha256") != _checksum(keys, features):
        raise ValueError("checksum mismatch")
    return keys, features


class FeatureCache:
    """The features of one backbone and pooling: on disk under ``root`` (``None``: in memory only).

    ``hits`` and ``computed`` count unique sequences served from the cache and run through the backbone.
    """

    def __init__(self, model: nn.Module, pooling: str = "last", root: str | Path | None = None) -> None:
        self.pooling = pooling
        self.key, self.meta = model_key(model, pooling)
        self.dir = None if root is None else Path(root).expanduser() / self.key
        self._rows: dict[bytes, torch.Tensor] = {}
        self._loaded = self.dir is None
        self.hits = 0
        self.computed = 0

    def _load(self) -> None:
        """Read every shard once; a damaged one is logged and deleted, its sequences then miss."""
        self._loaded = True
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("shard-*.safetensors")):
            try:
                keys, features = _read_shard(path)
            except Exception as e:  # unreadable, truncated or altered: any of them means recompute
                log.warning("feature cache: %s is damaged (%s: %s); deleting it, its features will be "
                            "computed again", path, type(e).__name__, e)
                path.unlink(missing_ok=True)
                continue
            for k, f in zip(keys.numpy(), features, strict=True):
                self._rows.setdefault(k.tobytes(), f)

    def get(self, key: bytes) -> torch.Tensor | None:
        if not self._loaded:
            self._load()
        return self._rows.get(key)

    def put(self, keys: Sequence[bytes], features: torch.Tensor) -> None:
        """Add ``features`` ``(len(keys), hidden)``; on disk as one new shard."""
        features = features.detach().to("cpu", torch.float32).contiguous()
        if self.dir is not None:
            try:
                self._write(keys, features)
            except OSError as e:  # a full or read-only disk costs the reuse, not the run
                log.warning("feature cache: cannot write to %s (%s); keeping features in memory only", self.dir, e)
                self.dir = None
        self._rows.update(zip(keys, features, strict=True))

    def _write(self, keys: Sequence[bytes], features: torch.Tensor) -> None:
        from safetensors.torch import save_file

        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "meta.json"
        if not meta.exists():
            tmp = self.dir / f".meta.{uuid.uuid4().hex}.tmp"
            tmp.write_text(jsonout.dumps({**self.meta, "hidden": features.shape[1]}, indent=2, default=str) + "\n")
            tmp.replace(meta)
        k = torch.from_numpy(np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32).copy())
        name = f"shard-{uuid.uuid4().hex}.safetensors"
        tmp = self.dir / f".{name}.tmp"
        save_file({"keys": k, "features": features}, str(tmp), metadata={"sha256": _checksum(k, features)})
        tmp.replace(self.dir / name)

    def summary(self) -> dict:
        """Where the cache is, its model key, and the counts so far (for metrics.json)."""
        return {"cache_dir": str(self.dir) if self.dir else None, "model_key": self.key,
                "pooling": self.pooling, "from_cache": self.hits, "computed": self.computed}


def pooled_features(scorer: ScalarScorer, seqs: Sequence[Sequence[int]], pooling: str) -> torch.Tensor:
    """Features ``(n, hidden)`` float32 computed by the backbone now (no cache), ``last`` or ``mean``:
    through :meth:`ScalarScorer.features` (packed where that pays) when that is what the model's head reads
    (a decoder's own pooling, an encoder's pooled output for ``last``), else from padded batches
    (:func:`pooled_features_many`)."""
    decoder = reads_last_token(scorer.model)
    if (decoder and pooling == pooling_of(scorer.model)) or (not decoder and pooling == "last"):
        return scorer.features(seqs)
    return pooled_features_many(scorer, seqs, [pooling])[pooling]


def cached_features(scorer: ScalarScorer, seqs: Sequence[Sequence[int]], cache: FeatureCache,
                    progress: bool = True) -> torch.Tensor:
    """Features ``(n, hidden)`` float32 of ``seqs`` with ``cache.pooling``: each unique sequence is
    looked up once, and only the missing ones run through ``scorer``'s backbone (longest first, a
    progress bar in tokens with an ETA), stored as they finish."""
    keys = [sequence_key(s) for s in seqs]
    todo: dict[bytes, Sequence[int]] = {}
    for k, s in zip(keys, seqs, strict=True):
        if k not in todo and cache.get(k) is None:
            todo[k] = s
    unique = len(set(keys))
    cache.hits += unique - len(todo)
    start = time.perf_counter()
    if todo:
        _extract(scorer, todo, cache, progress)
    log.info("features of %d sequences (%d unique): %d from the cache, %d computed in %.1f s",
             len(seqs), unique, unique - len(todo), len(todo), time.perf_counter() - start)
    if not seqs:
        return torch.empty(0, 0)
    return torch.stack([cache.get(k) for k in keys])  # type: ignore[misc]


def _extract(scorer: ScalarScorer, todo: dict[bytes, Sequence[int]], cache: FeatureCache, progress: bool) -> None:
    from tqdm.auto import tqdm

    items = sorted(todo.items(), key=lambda kv: -len(kv[1]))
    with tqdm(total=sum(len(s) for _, s in items), unit="tok", unit_scale=True, desc="backbone features",
              disable=not progress) as bar:
        for begin in range(0, len(items), SHARD_SIZE):
            chunk = items[begin:begin + SHARD_SIZE]
            parts = []
            for group in length_batches([len(s) for _, s in chunk], scorer.batch_tokens):
                seqs = [chunk[i][1] for i in group]
                parts.append((group, pooled_features(scorer, seqs, cache.pooling)))
                bar.update(sum(len(s) for s in seqs))
            feats = torch.empty(len(chunk), parts[0][1].shape[1])
            for group, f in parts:
                feats[group] = f
            cache.put([k for k, _ in chunk], feats)
            cache.computed += len(chunk)


@torch.inference_mode()
def pooled_features_many(scorer: ScalarScorer, seqs: Sequence[Sequence[int]],
                         poolings: Sequence[str], on_batch=None) -> dict[str, torch.Tensor]:
    """Features ``(n, hidden)`` float32 of every pooling in ``poolings`` from one backbone pass (batches
    of similar length, laid out as ``scorer`` lays them out): ``last`` as :meth:`ScalarScorer.features` reads
    it, ``mean`` as :func:`pooled_features` (within float tolerance). Half the cost of filling two caches
    one by one. ``on_batch(tokens)`` is called after each batch (a progress bar's ``update``)."""
    model = scorer.model
    decoder = reads_last_token(model)

    def step(batch, group):
        if decoder:
            hidden = hidden_states(backbone_of(model), batch)
            got = {"mean": hidden.mean, "last": hidden.at_last}
            feats = torch.cat([got[p]().float() for p in poolings], dim=-1)
        else:
            res = backbone_of(model)(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
            h, mask = res.last_hidden_state, batch.attention_mask
            got = {"mean": lambda: (h.float() * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True),
                   "last": lambda: res.pooler_output}
            feats = torch.cat([got[p]().float() for p in poolings], dim=-1)
        if on_batch is not None:
            on_batch(sum(len(seqs[i]) for i in group))
        return feats

    rows = forward_batches(seqs, step, scorer.device, layout=scorer.layout, pad_id=scorer.pad_id,
                           batch_tokens=scorer.batch_tokens)
    both = torch.stack(rows)
    return dict(zip(poolings, both.chunk(len(poolings), dim=-1), strict=True))


def fill_caches(scorer: ScalarScorer, seqs: Sequence[Sequence[int]], caches: Sequence[FeatureCache],
                progress: bool = True) -> int:
    """Compute the features of ``seqs`` that any of ``caches`` (one backbone, several poolings) lacks, in one
    backbone pass per sequence (:func:`pooled_features_many`), and store them; returns how many unique
    sequences ran through the backbone. Read them afterwards with :func:`cached_features`."""
    from tqdm.auto import tqdm

    todo: dict[bytes, Sequence[int]] = {}
    for s in seqs:
        k = sequence_key(s)
        if k not in todo and any(c.get(k) is None for c in caches):
            todo[k] = s
    items = sorted(todo.items(), key=lambda kv: -len(kv[1]))
    with tqdm(total=sum(len(s) for _, s in items), unit="tok", unit_scale=True, desc="backbone features",
              disable=not progress or not items) as bar:
        for begin in range(0, len(items), SHARD_SIZE):
            chunk = items[begin:begin + SHARD_SIZE]
            feats = pooled_features_many(scorer, [s for _, s in chunk], [c.pooling for c in caches], bar.update)
            for c in caches:
                c.put([k for k, _ in chunk], feats[c.pooling])
                c.computed += len(chunk)
    return len(items)


class CachedScorer(PairScoringMixin):
    """A scalar reward model scored from cached backbone features: reward = ``head(feature)``.

    ``score``, ``score_ids``, ``score_pairs`` and ``compare`` behave as :class:`ScalarScorer`'s (same
    encoder, same length checks), so evaluation and best-of-n take it as they are
    (``rewardlab.bon.run.score_candidates(CachedScorer(...), items)``); only sequences missing from
    ``cache`` run through the backbone. ``head`` defaults to the model's own reward head; with
    ``mean`` pooling it must be a head fitted on mean-pooled features.
    """

    can_score_ids = True

    def __init__(self, scorer: ScalarScorer, cache: FeatureCache, head: nn.Module | None = None,
                 progress: bool = True) -> None:
        self.scorer = scorer
        self.cache = cache
        self.head = head if head is not None else head_of(scorer.model)
        self.encoder = scorer.encoder
        self.tokenizer = scorer.tokenizer
        self.progress = progress

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the backbone computed the features in."""
        return self.scorer.dtype

    def check_length(self, ids: Sequence[int], where: str) -> None:
        self.scorer.check_length(ids, where)

    def features(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Features ``(n, hidden)`` of tokenized sequences, from the cache where it has them."""
        return cached_features(self.scorer, seqs, self.cache, self.progress)

    @torch.inference_mode()
    def score_ids(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Rewards ``(n,)`` float32 for tokenized sequences, in input order."""
        for i, s in enumerate(seqs):
            self.check_length(s, f"sequence {i}")
        p = next(self.head.parameters())
        return self.head(self.features(seqs).to(p.device, p.dtype)).squeeze(-1).float().cpu()

    def score(self, convs: Sequence[Conversation]) -> torch.Tensor:
        return self.score_ids(self.scorer.encode(convs))


def load_cached_scorer(path: str | Path, pooling: str | None = None, root: str | Path | None = None,
                       head: nn.Module | None = None, **kwargs) -> CachedScorer:
    """A reward-model directory as a :class:`CachedScorer` in float32 over the cache under ``root``
    with ``pooling`` (default: what its head reads)
    (default :func:`default_root`). For a model trained with a frozen backbone (``bt_frozen``) the
    backbone is the base model's, so the features its training computed are found again. ``kwargs``
    go to :meth:`ScalarScorer.load` (``device``, ``max_length``, ``batch_tokens``, ``trust``)."""
    scorer = ScalarScorer.load(path, dtype="float32", **kwargs)
    pooling = pooling or pooling_of(scorer.model)
    return CachedScorer(scorer, FeatureCache(scorer.model, pooling, root or default_root()), head)
