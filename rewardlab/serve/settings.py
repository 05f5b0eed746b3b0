"""Server settings: every field documented once; the ``serve`` CLI builds its flags from these."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve to any interface
        return False


@dataclass
class ServeSettings:
    """How ``rewardlab serve`` listens, authenticates, limits and batches."""

    host: str = "127.0.0.1"
    """Address to bind; loopback only unless told otherwise (0.0.0.0 exposes the server to the network, and
    needs an API key or --insecure-no-auth)."""
    port: int = 8000
    """TCP port."""
    api_key: str | None = None
    """When set, every endpoint but /health and the page needs ``Authorization: Bearer KEY``. A key on the
    command line is visible to every user of the machine (ps): prefer --api-key-file or REWARDLAB_API_KEY."""
    insecure_no_auth: bool = False
    """Allow a --host other than loopback without an API key: anyone who reaches the address can use the
    model (OpenRLHF's client sends no key; keep such a server on a private network)."""
    max_body_bytes: int = 4_000_000
    """Largest request body accepted, in bytes (413 above)."""
    max_batch: int = 256
    """Most items (conversations, queries, pairs) in one request (413 above)."""
    max_tokens: int | None = None
    """Longest sequence accepted, in tokens (413 above); default: the model's position limit. A text longer
    than this many times the model's longest token, in characters, is refused before it is tokenised."""
    token_budget: int = 8192
    """Most tokens merged into one forward pass by the dynamic batcher."""
    max_wait_ms: float = 5.0
    """How long the batcher waits for more requests to fill a batch, in milliseconds."""
    max_queue: int = 512
    """Most requests waiting for the model; beyond it the server answers 429 at once."""
    graceful_timeout_s: float = 30.0
    """On shutdown, how long in-flight requests may take to finish, in seconds."""
    model_name: str = ""
    """Name reported by /health and /metrics (default: the model directory)."""

    def __post_init__(self) -> None:
        checks = {"port": 0 <= self.port <= 65535, "max_body_bytes": self.max_body_bytes > 0,
                  "max_batch": self.max_batch > 0, "token_budget": self.token_budget > 0,
                  "max_wait_ms": self.max_wait_ms >= 0, "max_queue": self.max_queue > 0,
                  "graceful_timeout_s": self.graceful_timeout_s >= 0,
                  "max_tokens": self.max_tokens is None or self.max_tokens > 0}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"--{name.replace('_', '-')}: invalid value {getattr(self, name)!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("--api-key: must not be empty")
        if self.api_key is None and not self.insecure_no_auth and not is_loopback(self.host):
            raise ValueError(
                f"--host {self.host}: serving beyond this machine needs an API key (--api-key-file FILE or "
                "REWARDLAB_API_KEY); to serve it unprotected anyway, pass --insecure-no-auth")
