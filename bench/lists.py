"""B5: the operator's mailbox list page and GET /api/v1/mailboxes: server time, query count.

The first page, and the middle one reached by cursor (keyset pagination, as a client paging
through gets there).

In process with Django's test Client (server time without the network, queries counted with
CaptureQueriesContext), and over HTTP against gunicorn (what a client waits for). Run at each
size: a query count that does not change with the size is the point.
"""

import time

from bench.context import BenchError, Ctx
from bench.seed import ORG_SLUG
from bench.stats import ms, summary


def _middle_cursor(ctx: Ctx) -> str:
    """The cursor a client holds after paging to the middle of the list (found once, with
    an OFFSET query outside the timings)."""
    from mailboxes.models import Mailbox
    from mailboxes.selectors import MAILBOX_ORDER
    from mailhost.keyset import encode_cursor

    middle = (
        Mailbox.objects.filter(domain__organisation__slug=ORG_SLUG, deleted_at=None)
        .order_by(*MAILBOX_ORDER)
        .values_list(*MAILBOX_ORDER)[ctx.mailboxes // 2]
    )
    return encode_cursor(list(middle))


def _targets(ctx: Ctx) -> dict[str, tuple[str, dict]]:
    bearer = {"Authorization": f"Bearer {ctx.tenant.token}"}
    cursor = _middle_cursor(ctx)
    return {
        "page": (f"/mail-admin/{ORG_SLUG}/mailboxes/", {}),
        "api": ("/api/v1/mailboxes?limit=100", bearer),
        "page_deep": (f"/mail-admin/{ORG_SLUG}/mailboxes/?after={cursor}", {}),
        "api_deep": (f"/api/v1/mailboxes?limit=100&cursor={cursor}", bearer),
    }


def list_pages(ctx: Ctx, *, repeats: int) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(ctx.tenant.user)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    results = {"mailboxes": ctx.mailboxes, "domains": ctx.domains}
    for name, (path, headers) in _targets(ctx).items():
        client.get(path, headers=headers)  # warm: templates, connections, caches
        times, counts, sql = [], [], None
        for _ in range(repeats):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(path, headers=headers)
                times.append(ms(time.perf_counter() - started))
            if response.status_code != 200:
                raise BenchError(f"GET {path}: {response.status_code}")
            counts.append(len(queries.captured_queries))
            sql = sql or [q["sql"][:300] for q in queries.captured_queries]
        http_times = []
        for _ in range(repeats):
            if name.startswith("page"):
                status, seconds, _ = ctx.api.get_page(path, cookies)
            else:
                status, _, seconds = ctx.api.request("GET", path.removeprefix("/api/v1"))
            if status != 200:
                raise BenchError(f"GET {path} over HTTP: {status}")
            http_times.append(ms(seconds))
        results[name] = {
            "path": path,
            "server_ms": summary(times),
            "http_ms": summary(http_times),
            "queries": sorted(set(counts)),
            "sql": sql,
            "samples": {"server_ms": times, "http_ms": http_times},
        }
    return results
