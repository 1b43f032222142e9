"""Routing's services: one module per sub-domain (relays, the queue), re-exported here."""

from routing.services.queue import queue_act
from routing.services.relays import (
    RelayInput,
    TestResult,
    check_reachable,
    relay_delete,
    relay_set,
    relay_test,
)

__all__ = [
    "queue_act", "RelayInput", "TestResult", "check_reachable", "relay_delete", "relay_set",
    "relay_test",
]
