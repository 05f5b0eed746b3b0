"""A causal LM of random weights in a known shape, with SmolLM2's tokenizer: what GPU benchmarks run
where no weights can travel (throughput depends on the shape, not on the weights).

Shapes:

- ``smollm2``: SmolLM2-135M-Instruct's config (30 blocks, d_model 576, 9 query / 3 key-value heads);
- ``llama-1b``: a Llama of about 1.1B parameters (22 blocks, d_model 2048, 32 / 4 heads, MLP 5632, tied
  embeddings over SmolLM2's 49,152-token vocabulary);
- ``tiny``: 2 blocks, d_model 64, for dry runs.

The directory written is a transformers checkpoint (config, safetensors, tokenizer). Written as
``<cache>/smollm2-135m-instruct`` it stands in for the embedded model (``REWARDLAB_CACHE=<cache>``), so
every command that takes ``smollm2`` runs on it.

    python benchmarks/random_model.py --shape smollm2 --out /tmp/rl-cache/smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

SMOLLM2 = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
    "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
    "hidden_act": "silu", "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
    "tie_word_embeddings": True, "vocab_size": 49152, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
    "attention_bias": False, "mlp_bias": False, "initializer_range": 0.02,
}
SHAPES = {
    "smollm2": SMOLLM2,
    "llama-1b": {**SMOLLM2, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
                 "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 64},
    "tiny": {**SMOLLM2, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16},
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


def tokenizer_dir(given: str | None) -> Path:
    """``given``, else SmolLM2's tokenizer from the embedded package (:func:`rewardlab.assets.smollm2_tokenizer_path`)."""
    if given:
        path = Path(given)
        if not (path / "tokenizer_config.json").exists():
            raise SystemExit(f"--tokenizer {path}: no tokenizer_config.json there")
        return path
    from rewardlab.assets import smollm2_tokenizer_path

    return smollm2_tokenizer_path()


def write_random_model(shape: str, out: Path, tokenizer: Path, seed: int = 0) -> Path:
    """Write a ``shape`` causal LM of seeded random weights (fp32) with ``tokenizer``'s files to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    if shape not in SHAPES:
        raise SystemExit(f"--shape {shape!r}: choose one of {', '.join(SHAPES)}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(LlamaConfig(**SHAPES[shape]), dtype=torch.float32)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tokenizer / name).exists():
            shutil.copy(tokenizer / name, out / name)
    params = sum(p.numel() for p in model.parameters())
    print(f"{shape}: {params / 1e6:.1f}M parameters (random, seed {seed}) -> {out}")
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="smollm2", choices=sorted(SHAPES))
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--tokenizer", default=None, help="a directory with SmolLM2's tokenizer (default: the embedded one)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    return write_random_model(args.shape, Path(args.out), tokenizer_dir(args.tokenizer), args.seed)


if __name__ == "__main__":
    main()
