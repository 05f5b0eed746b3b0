"""Sampling k continuations per prompt: transformers ``generate`` on any device, vLLM when installed.

Both backends implement :class:`Backend` (``sample(prompts, k, ...)`` on token ids), so the CoT judge
and the STaR loop never know which one runs. :func:`make_backend` picks one.

The transformers backend shares each prompt's KV cache across its k samples: the prompts are run
through the model once (left-padded batch), the cache is repeated k times along the batch, and one
``generate`` call decodes all ``n·k`` continuations together. ``generate(num_return_sequences=k)``
alone would copy the prompt k times *before* the forward pass and compute it k times.
``benchmarks/bench_cot_kv.py`` measures it against k separate calls.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from rewardlab.models.judge import left_pad


class Backend(Protocol):
    def sample(self, prompts: Sequence[Sequence[int]], k: int, temperature: float = 0.7,
               max_new_tokens: int = 128, seed: int = 0) -> list[list[str]]:
        """``k`` sampled continuations (decoded text, special tokens removed) of each prompt, in order;
        ``temperature`` 0 is greedy (then the k continuations are identical)."""
        ...


class TransformersBackend:
    """``generate`` from an in-memory causal LM; ``batch_size`` prompts (each with k samples) per call."""

    def __init__(self, model: nn.Module, tokenizer, batch_size: int = 8, share_prompt_cache: bool = True,
                 generation_kwargs: dict | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.share_prompt_cache = share_prompt_cache
        self.generation_kwargs = dict(generation_kwargs or {})
        """More ``GenerationConfig`` fields (``top_p``, ``min_new_tokens``, ...)."""
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)

    @torch.inference_mode()
    def sample(self, prompts, k, temperature=0.7, max_new_tokens=128, seed=0) -> list[list[str]]:
        """Prompts are batched by length (less left padding to prefill and attend over) and answered
        in input order, with a progress bar over prompts."""
        from tqdm.auto import tqdm

        was_training = self.model.training
        self.model.eval()
        torch.manual_seed(seed)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[list[str] | None] = [None] * len(prompts)
        bar = tqdm(total=len(prompts), desc=f"sampling k={k}", unit="prompt", disable=len(prompts) <= self.batch_size)
        try:
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                new = self._generate([list(prompts[i]) for i in idx], k, temperature, max_new_tokens)
                texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
                for j, i in enumerate(idx):
                    out[i] = texts[j * k:(j + 1) * k]
                bar.update(len(idx))
        finally:
            bar.close()
            self.model.train(was_training)
        return out

    def _generate(self, prompts: list[list[int]], k: int, temperature: float, max_new_tokens: int) -> torch.Tensor:
        """New tokens ``(len(prompts)·k, ≤ max_new_tokens)``, rows ``i·k .. i·k+k−1`` for prompt ``i``."""
        from transformers import GenerationConfig

        device = next(self.model.parameters()).device
        ids, mask = left_pad(prompts, self.pad_id)
        ids, mask = ids.to(device), mask.to(device)
        cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                               temperature=temperature if temperature > 0 else None, top_p=None, top_k=None,
                               pad_token_id=self.pad_id, eos_token_id=self.tokenizer.eos_token_id,
                               **self.generation_kwargs)
        width = ids.shape[1]
        rows = dict(input_ids=ids.repeat_interleave(k, 0), attention_mask=mask.repeat_interleave(k, 0))
        if not self.share_prompt_cache or width < 2:  # generate computes each of the k prompt copies
            return self.model.generate(**rows, generation_config=cfg)[:, width:]
        cache = self._prefill(ids[:, :-1], mask[:, :-1])
        if k > 1:
            cache.batch_repeat_interleave(k)
        gen = self.model.generate(**rows, **{_cache_arg(self.model): cache}, generation_config=cfg)
        return gen[:, width:]

    def _prefill(self, ids: torch.Tensor, mask: torch.Tensor):
        """The KV cache of every prompt but its last token (``generate`` feeds that one itself)."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                   **{_cache_arg(self.model): cache})
        return cache


def _cache_arg(model: nn.Module) -> str:
    """The keyword the model takes its KV cache by: ``cache`` (newer transformers) or ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class VLLMBackend:
    """vLLM's offline engine on a model directory (GPU machines); it shares prompt prefixes itself."""

    def __init__(self, path: str, **engine_kwargs) -> None:
        from vllm import LLM

        self.llm = LLM(model=str(path), **engine_kwargs)

    def sample(self, prompts, k, temperature=0.7, max_new_tokens=128, seed=0) -> list[list[str]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(n=k, temperature=temperature, max_tokens=max_new_tokens, seed=seed)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params,
                                 use_tqdm=False)
        return [[c.text for c in o.outputs] for o in outs]


class CachedBackend:
    """A backend whose answers are kept on disk, keyed by everything that determines them: ``model_key``
    (name the weights: use it only while they stay unchanged), the prompt ids, k, temperature, length
    and seed. Runs that sample from the same model with the same settings then sample once, e.g. the
    first STaR iteration of several variants, which all start from the initial model."""

    def __init__(self, backend: Backend, directory: str | Path, model_key: str) -> None:
        self.backend = backend
        self.directory = Path(directory)
        self.model_key = model_key

    def sample(self, prompts, k, temperature=0.7, max_new_tokens=128, seed=0) -> list[list[str]]:
        import hashlib
        import json

        from rewardlab import jsonout

        key = jsonout.dumps([self.model_key, [list(map(int, p)) for p in prompts], k, temperature, max_new_tokens, seed])
        path = self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
        if path.exists():
            return json.loads(path.read_text())
        out = self.backend.sample(prompts, k, temperature, max_new_tokens, seed)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(jsonout.dumps(out))
        tmp.replace(path)
        return out


BACKENDS = ("auto", "transformers", "vllm")


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def make_backend(name: str, model: nn.Module | None = None, tokenizer=None, path: str | None = None,
                 batch_size: int = 8) -> Backend:
    """``transformers`` (the in-memory ``model``), ``vllm`` (loads ``path``), or ``auto``: vLLM when it
    is installed and a GPU is present and ``path`` is given, else transformers."""
    if name not in BACKENDS:
        raise ValueError(f"generation backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "vllm" or (name == "auto" and path is not None and vllm_available()):
        if importlib.util.find_spec("vllm") is None:
            raise ValueError("generation backend 'vllm' needs the vllm package (pip install vllm)")
        if path is None:
            raise ValueError("generation backend 'vllm' needs a model directory")
        return VLLMBackend(path)
    if model is None or tokenizer is None:
        raise ValueError("the transformers generation backend needs a model and its tokenizer")
    return TransformersBackend(model, tokenizer, batch_size=batch_size)
