"""The scalar kind: a reward head on a language model (``AutoModelForSequenceClassification``), trained on
packed, forked or padded pairs, or, with a frozen backbone, on cached features. The Bradley-Terry variants
(plain, margin, label smoothing, frozen) are its options."""

from __future__ import annotations

from rewardlab.kinds.base import Kind, register_kind
from rewardlab.models.scalar import RewardForward, build_reward_model, head_of, load_scalar_model, unwrap


@register_kind
class ScalarKind(Kind):
    name = "scalar"
    load = staticmethod(load_scalar_model)

    def build_model(self, base, tok, head, dtype, trust, num_layers=0):
        return build_reward_model(base, tok, head, dtype, trust, num_layers)

    def training_inputs(self, recipe, variant, model, tok, train_ds, eval_ds, dtype, features=None):
        from rewardlab.train.data import (
            FeatureCollator,
            HeadForward,
            PairCollator,
            feature_dataset,
            feature_stats,
            training_layout,
        )

        if features is not None:  # a frozen backbone: the head trains alone on cached features of both sides
            for p in unwrap(model).parameters():
                p.requires_grad_(False)
            head = head_of(model)
            for p in head.parameters():
                p.requires_grad_(True)
            train_features = feature_dataset(features, train_ds)
            return (train_features, feature_dataset(features, eval_ds) if eval_ds else None,
                    FeatureCollator(variant.needs_margin), HeadForward(head, *feature_stats(train_features)), False)
        fork = recipe.train.fork_prompts and recipe.model.pooling == "last"  # a mean needs each side's own prompt
        collator = PairCollator(training_layout(model, recipe.train.packing, fork),
                                unwrap(model).config.pad_token_id or 0, variant.needs_margin)
        return train_ds, eval_ds, collator, RewardForward(model), recipe.train.group_by_length

    def loss(self, variant, module, inputs):
        inputs = dict(inputs)
        margin = inputs.pop("margin", None)
        rewards = module(**inputs)
        b = rewards.shape[0] // 2
        chosen, rejected = rewards[:b], rewards[b:]
        return chosen, rejected, variant.loss(chosen, rejected, margin)


