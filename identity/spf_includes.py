"""What the SPF record must include beyond the mail host: the relay a domain's mail leaves by.

Identity does not know relays (the routing app sits above it). Routing registers a reader from
its `AppConfig.ready()` (routing.selectors.spf_includes_of); without one there is nothing to
include.
"""

from collections.abc import Callable

_reader: Callable[..., tuple[str, ...]] | None = None


def register(reader: Callable[..., tuple[str, ...]]) -> None:
    """Called from an app's `ready()`: `reader(domain)` gives the names to `include:`."""
    global _reader
    _reader = reader


def spf_includes(domain) -> tuple[str, ...]:
    return () if _reader is None else tuple(_reader(domain))
