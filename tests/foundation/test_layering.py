"""Imports point one way, and no module imports itself back through others.

The layers, lowest first (docs/architecture.md):

    mailhost/backend <- mailhost (library) <- nodes <- tenants <- mailboxes <- identity, bans
        <- delivery, reports <- routing <- status <- backups <- pages/API/admin/commands
        <- project wiring

A module may import from its own layer and the layers below; apps on one layer (identity,
bans) do not import each other. Interface modules (pages, API routers, admin, management
commands, url confs) may import any app's services and selectors, and the project wiring
(settings, root urls and API, host dispatch, health, Celery, WSGI) may import anything.

The graph is built from the source with `ast`, function-level imports included (they hid the
cycles this test was written against); `if TYPE_CHECKING:` blocks are left out.
"""

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "mailhost", "nodes", "tenants", "mailboxes", "identity", "bans",
    "delivery", "reports", "routing", "status", "webmail", "backups", "mailcrypt",
)

# The project wiring: the composition root that mounts every app.
WIRING = {
    "mailhost.settings", "mailhost.urls", "mailhost.api", "mailhost.hosts", "mailhost.health",
    "mailhost.celery", "mailhost.wsgi", "mailhost.asgi",
}  # fmt: skip
# Interface modules inside an app, by the last part of their name (or a management command).
INTERFACE_NAMES = {
    "api", "staff_api", "views", "portal_views", "posture_views", "inbound_views", "urls",
    "portal_urls", "admin", "forms",
}  # fmt: skip
APP_RANK = {
    "nodes": 2, "tenants": 3, "mailboxes": 4, "identity": 5, "bans": 5, "delivery": 6,
    "reports": 6, "routing": 7, "status": 8, "webmail": 6, "backups": 9, "mailcrypt": 5,
}  # fmt: skip
INTERFACE, TOP = 10, 11


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            modules[module_name(path)] = path
    return modules


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every project module `tree` imports, wherever the import statement is."""
    known = project_modules()
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if target := resolve(alias.name):
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                if target := resolve(f"{base}.{alias.name}"):
                    found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


@cache
def import_graph() -> dict[str, set[str]]:
    return {
        module: _imported(ast.parse(path.read_text()), module, path.name == "__init__.py")
        for module, path in project_modules().items()
    }


def layer(module: str) -> tuple[int, str]:
    """(rank, app) of a module: a higher rank may import a lower one, never the reverse."""
    parts = module.split(".")
    app = parts[0]
    if module in WIRING:
        return TOP, app
    if module == "mailhost.env":  # environment parsing, no Django models: the node reads it too
        return 0, "mailhost.backend"
    if app == "mailhost":
        return (0, "mailhost.backend") if parts[1:2] == ["backend"] else (1, app)
    if "management" in parts or parts[-1] in INTERFACE_NAMES:
        return INTERFACE, app
    return APP_RANK[app], app


def allowed(importer: str, imported: str) -> bool:
    (rank, app), (their_rank, their_app) = layer(importer), layer(imported)
    if rank >= INTERFACE:
        return their_rank <= rank and not (their_rank == TOP and rank != TOP)
    if app == their_app:
        return True
    return their_rank < rank


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_graph_is_the_project():
    graph = import_graph()
    assert "nodes.reconcile" in graph["nodes.tasks"]
    assert "mailhost.backend.render" in graph["nodes.reconcile"]
    assert len(graph) > 100


def test_no_module_imports_itself_back():
    assert cycles(import_graph()) == []


def test_imports_point_down():
    upward = sorted(
        f"{importer} -> {imported}  ({layer(importer)[1]}:{layer(importer)[0]} imports "
        f"{layer(imported)[1]}:{layer(imported)[0]})"
        for importer, targets in import_graph().items()
        for imported in targets
        if not allowed(importer, imported)
    )
    assert upward == []


def test_no_app_imports_another_apps_private_names():
    """`from other_app.x import _helper` reaches into a module's insides: make it public (or
    move it) instead."""
    reaching = []
    for module, path in project_modules().items():
        app = module.split(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                other = node.module.split(".")[0]
                if other != app and other in PACKAGES:
                    reaching += [
                        f"{module}: {node.module}.{a.name}"
                        for a in node.names
                        if a.name.startswith("_")
                    ]
    assert reaching == []


def test_the_checks_can_fail():
    """The checks themselves: a cycle and an upward import are found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert not allowed("nodes.reconcile", "mailboxes.snapshot")
    assert not allowed("mailhost.names", "tenants.models")
    assert not allowed("mailhost.backend.render", "mailhost.crypto")
    assert not allowed("identity.services", "bans.services")
    assert allowed("identity.services", "mailboxes.selectors")
    assert allowed("mailboxes.views", "identity.services")
    assert not allowed("mailboxes.views", "mailhost.urls")
