"""Routing's services: one module per sub-domain (relays, the queue, the TLS policy, the
outgoing TLS reports),
everything public re-exported here."""

from routing.services.queue import queue_act
from routing.services.relays import (
    RelayInput,
    TestResult,
    check_reachable,
    relay_delete,
    relay_set,
    relay_test,
)
from routing.services.tls_policy import (
    tls_outcomes_collect,
    tls_policy_delete,
    tls_policy_set,
)
from routing.services.tls_reports import RunResult, report_message, tls_reports_send

__all__ = [
    "queue_act", "RelayInput", "TestResult", "check_reachable", "relay_delete", "relay_set",
    "relay_test", "tls_outcomes_collect", "tls_policy_delete", "tls_policy_set",
    "RunResult", "report_message", "tls_reports_send",
]
