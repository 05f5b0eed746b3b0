"""The judge kind: a causal LM that compares two responses (GenRM's answer-indicator probability, CoT-GenRM's
vote over sampled rationales), trained by supervised fine-tuning on verdicts or by the STaR loop on its
own rationales. It saves a judge directory (``rewardlab_judge.json``), which the loader scores with
:class:`rewardlab.models.judge_scorer.JudgeScorer`."""

from __future__ import annotations

from rewardlab.kinds.base import Kind, register_kind


@register_kind
class JudgeKind(Kind):
    name = "judge"

    def train(self, recipe, data=None) -> dict:
        from rewardlab.variants import VARIANTS

        if VARIANTS.get(recipe.variant.name).self_improving:  # trained on its own rationales
            from rewardlab.train.star import run_star

            return run_star(recipe)
        from rewardlab.train.judge import train_judge_model

        return train_judge_model(recipe)
