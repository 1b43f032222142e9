"""Writes of the routing app (one module per sub-domain, everything public re-exported)."""

from routing.services.tls_policy import (
    tls_outcomes_collect,
    tls_policy_delete,
    tls_policy_set,
)

__all__ = ["tls_outcomes_collect", "tls_policy_delete", "tls_policy_set"]
