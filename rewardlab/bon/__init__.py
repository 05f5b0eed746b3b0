"""Best-of-n: how much of a proxy reward model's preference survives when a policy is optimised against it.

``estimator`` computes expected proxy and gold values of the best-of-n choice exactly (over every size-n
subset of the candidates), ``data`` reads candidate sets, ``score`` scores each candidate once,
``run`` ties them into the ``rewardlab bon`` report, ``plots`` draws it and ``sample`` produces candidates
from a policy.
"""

from rewardlab.bon.estimator import best_of_n_weights, expected_best_of_n, fit_gao, kl_bon

__all__ = ["best_of_n_weights", "expected_best_of_n", "fit_gao", "kl_bon"]
