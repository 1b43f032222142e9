"""What the SPF record must include beyond the mail host: the relay a domain's mail leaves by.

Identity does not know relays (the routing app sits above it). Routing registers a reader from
its `AppConfig.ready()` (routing.selectors.spf_includes_of); without one there is nothing to
include.
"""

from collections.abc import Callable

_reader: Callable[..., tuple[str, ...]] | None = None
_many_reader: Callable[..., dict[int, tuple[str, ...]]] | None = None


def register(
    reader: Callable[..., tuple[str, ...]],
    many: Callable[..., dict[int, tuple[str, ...]]] | None = None,
) -> None:
    """Called from an app's `ready()`: `reader(domain)` gives the names to `include:`;
    `many(domains)` the same for many domains at once, {domain id: names}."""
    global _reader, _many_reader
    _reader, _many_reader = reader, many


def spf_includes(domain) -> tuple[str, ...]:
    return () if _reader is None else tuple(_reader(domain))


def spf_includes_many(domains: list) -> dict[int, tuple[str, ...]]:
    """{domain id: includes} for many domains: one query with a bulk reader (a node's hosted
    zone lists every live domain), one per domain without."""
    if _reader is None:
        return {domain.pk: () for domain in domains}
    if _many_reader is None:
        return {domain.pk: tuple(_reader(domain)) for domain in domains}
    return _many_reader(domains)
