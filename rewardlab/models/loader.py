"""One loader: any reward model rewardlab can score with, as a :class:`rewardlab.types.Scorer`.

What the directory records picks the scorer: a judge (``rewardlab_judge.json``) compares pairs, an
ensemble (``ensemble.json``) reduces its members' rewards, and any other model directory (a scalar
reward model or a GRM, by the kind its checkpoint records: :mod:`rewardlab.models.loading`) scores with
its reward head. Two requests need saying, since any causal LM qualifies: ``judge`` (use the model as a
pairwise LLM judge) and ``implicit`` (score with a DPO policy's implicit reward). The Python API
(:func:`rewardlab.load_scorer`), every CLI verb (``rewardlab.cli.common.load_scorer``) and the server
load through here.
"""

from __future__ import annotations

from pathlib import Path

from rewardlab.types import Scorer


def load_scorer(path: str | Path, dtype: str = "float32", trust: bool = False, *, judge: str | dict | None = None,
                implicit: str | None = None, reference: str | Path | None = None, beta: float = 0.1,
                reduction: str | None = None, lam: float | None = None, **kwargs) -> Scorer:
    """The Scorer for ``path`` (a directory, a hub id, or an embedded alias such as ``smollm2``).

    ``dtype``: ``float32``, ``bfloat16`` or ``auto``; ``trust=True`` allows pickle weights and remote code.
    ``judge``: a spec (``"indicator"``, ``"cot:k=8"``) or a dict of judge settings; a judge directory
    needs none. ``implicit``: ``ratio`` (β·log π/π_ref, needs ``reference``), ``sum`` or ``mean``, with
    ``beta``. ``reduction`` / ``lam`` override an ensemble's manifest. Other keyword arguments
    (``device``, ``max_length``, ``batch_tokens``, ``packing``, ``progress``) go to the scalar scorer; a
    judge or an implicit reward takes ``device`` and ``max_length`` of them.
    """
    from rewardlab.models.ensemble import EnsembleScorer, is_ensemble_dir
    from rewardlab.models.judge_scorer import JudgeScorer, is_judge_dir, parse_judge_spec
    from rewardlab.models.scorer import ScalarScorer

    common = {k: kwargs[k] for k in ("max_length", "device") if k in kwargs}
    if implicit:
        from rewardlab.models.implicit import DPOImplicitScorer

        return DPOImplicitScorer.load(path, reference, beta=beta, reduction=implicit, dtype=dtype, trust=trust,
                                      **common)
    if judge is not None or is_judge_dir(path):
        settings = parse_judge_spec(judge) if isinstance(judge, str) else dict(judge or {})
        return JudgeScorer.load(path, dtype=dtype, trust=trust, **common, **settings)
    if is_ensemble_dir(path):
        return EnsembleScorer.load(path, reduction, lam, dtype=dtype, trust=trust, **kwargs)
    return ScalarScorer.load(path, dtype=dtype, trust=trust, **kwargs)
