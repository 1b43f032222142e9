"""Enumerating what the portal serves, so sweeps cover new pages and operations by themselves:
every named URL from the resolver, every API read from the OpenAPI schema, each filled with
real objects (the `everything` fixture in conftest.py)."""

from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, reverse

from mailhost.api import api


@dataclass
class Everything:
    """One of each kind of object, and the values that name them in URLs."""

    values: dict
    by_name: dict  # per URL name, values that differ (an alias's address, a token's pk…)
    read_only_token: str
    mailbox_password: str


def named_patterns(patterns=None, namespace=None):
    """(namespaced name, pattern) of every named URL, walking includes."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            inner = entry.namespace
            if namespace and inner:
                inner = f"{namespace}:{inner}"
            yield from named_patterns(entry.url_patterns, inner or namespace)
        elif isinstance(entry, URLPattern) and entry.name:
            yield (f"{namespace}:{entry.name}" if namespace else entry.name), entry.pattern


def page_urls(everything: Everything) -> list[str]:
    """Every page URL (the API is swept through its schema, with its methods). A name whose
    placeholders do not fit is returned as the bare name, so a test can say which."""
    urls = []
    for name, pattern in named_patterns():
        if name.startswith("api:"):
            continue
        params = list(pattern.converters) or list(pattern.regex.groupindex)
        own = everything.by_name.get(name) or {}
        kwargs = {k: own.get(k, everything.values.get(k, "x")) for k in params}
        try:
            urls.append(reverse(name, kwargs=kwargs))
        except Exception:
            urls.append(name)
    return urls


def api_get_paths(everything: Everything) -> list[str]:
    """Every GET operation of the API schema, its path filled in, without /api/v1."""
    token_id = everything.by_name["tenants:token_revoke"]["pk"]
    paths = []
    for path, operations in api.get_openapi_schema()["paths"].items():
        if "get" in operations:
            filled = path.format(token_id=token_id, **everything.values)
            paths.append(filled.removeprefix("/api/v1"))
    return paths
