"""The choice lists that recipes, the Python API and the CLI share, each written once (no torch import,
so building the command line stays fast)."""

DTYPES = ("auto", "float32", "bfloat16")
"""Precisions by name; ``auto`` is bfloat16 where a measurement on the device says it is faster."""
ENSEMBLE_REDUCTIONS = ("mean", "min", "mean_minus_std")
"""How an ensemble combines its members' rewards."""
IMPLICIT_REDUCTIONS = ("ratio", "sum", "mean")
"""The DPO implicit rewards: β·log π/π_ref, β·log π, β·log π per token."""
