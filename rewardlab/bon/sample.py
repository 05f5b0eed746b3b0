"""Candidates for best-of-n from a policy: N sampled responses per prompt, written as best-of-n records.

Generation goes through :func:`rewardlab.models.generation.make_backend` (transformers ``generate`` on
any device, sharing each prompt's KV cache across its N samples; vLLM on GPU machines when installed).
The records (``{"id", "prompt", "responses", "gold": [null, ...]}``) are what ``rewardlab bon`` reads;
judge them with ``--gold-model``, or fill ``gold`` from another judge.
"""

from __future__ import annotations

from pathlib import Path

from rewardlab import jsonout
from rewardlab.data.formats import to_prompt
from rewardlab.data.readers import DataError, iter_records
from rewardlab.types import Conversation


def load_prompts(source: str | Path, limit: int | None = None) -> list[tuple[str, Conversation]]:
    """``(id, prompt)`` from records with ``prompt`` (string or messages) or ``instruction`` (string)."""
    out = []
    for location, rec in iter_records(source):
        if limit is not None and len(out) >= limit:
            break
        value = rec.get("prompt", rec.get("instruction")) if isinstance(rec, dict) else None
        if value is None:
            raise DataError(location, "prompt", "missing; expected 'prompt' (string or messages) or 'instruction'",
                            reason="missing_field")
        prompt = to_prompt(value, location)
        if not prompt:
            raise DataError(location, "prompt", "is empty", reason="empty_response")
        out.append((str(rec.get("id", location)), prompt))
    if not out:
        raise DataError(str(source), "records", "no prompts found")
    return out


def sample_candidates(policy: str, prompts: list[tuple[str, Conversation]], n: int, temperature: float = 1.0,
                      top_p: float = 1.0, max_new_tokens: int = 256, seed: int = 0, backend: str = "transformers",
                      batch_size: int = 4, dtype: str = "float32", trust: bool = False) -> list[dict]:
    """``n`` responses per prompt from the causal LM ``policy`` (directory, hub id or ``smollm2``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardlab.assets import resolve_model_path
    from rewardlab.models.generation import make_backend
    from rewardlab.models.safety import check_checkpoint
    from rewardlab.precision import resolve_dtype

    path = str(resolve_model_path(policy))
    use_safe = check_checkpoint(path, trust)  # pickle weights or remote code only with trust
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
    model = None
    if backend != "vllm":
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype), trust_remote_code=trust,
                                                     use_safetensors=use_safe if use_safe else None).eval()
    gen = make_backend(backend, model, tok, path=path, batch_size=batch_size)
    if top_p < 1.0 and hasattr(gen, "generation_kwargs"):
        gen.generation_kwargs["top_p"] = top_p
    ids = [_prompt_ids(tok, conv) for _, conv in prompts]
    texts = gen.sample(ids, n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    return [{"id": pid, "prompt": conv, "responses": list(t), "gold": [None] * len(t)}
            for (pid, conv), t in zip(prompts, texts, strict=True)]


def _prompt_ids(tok, conv: Conversation) -> list[int]:
    if getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    text = "\n".join(f"{m['role']}: {m['content']}" for m in conv) + "\nassistant: "
    return tok(text)["input_ids"]


def write_records(records: list[dict], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as fh:
        for r in records:
            fh.write(jsonout.dumps(r) + "\n")
    return out
