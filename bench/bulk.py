"""B3: N new mailboxes in one POST /api/v1/mailboxes/bulk, until every one is live.

"Live" is the node's applied revision reaching the revision the last row needed (the API's own
`live` rule), confirmed by an IMAP LOGIN of the last mailbox created. How much of the time is
password hashing is measured directly: the same number of generated passwords hashed here, on
one core, with the portal's own function and cost.
"""

import time

from bench.context import BenchError, Ctx
from bench.seed import domain_name
from bench.stats import ms


def _hashing_seconds(rows: int, sample: int = 300) -> dict:
    from mailhost.passwords import generate_password, hash_password

    started = time.perf_counter()
    for _ in range(sample):
        hash_password(generate_password(), generated=True)
    per_hash = (time.perf_counter() - started) / sample
    return {"per_hash_ms": ms(per_hash), "seconds_for_all_rows": round(per_hash * rows, 2)}


def bulk_create(ctx: Ctx, *, rows: int) -> dict:
    from nodes.models import MailNode

    ctx.settle()
    payload = {
        "mailboxes": [
            {"address": f"bulk{i:05d}@{domain_name(i % ctx.domains)}"} for i in range(rows)
        ],
        "atomic": False,
    }
    started = time.perf_counter()
    status, body, api_seconds = ctx.api.request(
        "POST", "/mailboxes/bulk", payload, timeout=1200
    )
    if status != 200 or body.get("created") != rows:
        summary = {k: body.get(k) for k in ("created", "existing", "failed")} if isinstance(
            body, dict) else body
        raise BenchError(f"bulk: {status} {summary}")
    needed = max(row["mailbox"]["revision"] for row in body["results"])
    node = ctx.tenant.node
    deadline = time.monotonic() + 600
    while MailNode.objects.values_list("applied_revision", flat=True).get(pk=node.pk) < needed:
        if time.monotonic() > deadline:
            raise BenchError("bulk: not live after 600 s")
        time.sleep(0.01)
    applied = time.perf_counter()
    last = body["results"][-1]
    ctx.probe.run(last["address"], last["password"], start=time.perf_counter(), timeout=30)
    total = time.perf_counter() - started
    hashing = _hashing_seconds(rows)
    return {
        "rows": rows,
        "mailboxes_before": ctx.mailboxes,
        "api_seconds": round(api_seconds, 2),
        "live_after_response_seconds": round(applied - started - api_seconds, 3),
        "total_seconds": round(total, 2),
        "rows_per_second": round(rows / total, 1),
        "hashing": hashing,
        "hashing_share_of_total": round(hashing["seconds_for_all_rows"] / total, 3),
    }
