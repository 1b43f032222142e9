"""The results table: one row per scenario metric, with its target and pass/miss.

Targets are the benchmark issues', stated for the full size on a 2-core machine; at
1,000,000 mailboxes, issue 12's (MILLION). A missed
target is reported, never an error: only failures to run make the command exit non-zero.
"""


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and unit in ("×", " s") and abs(value) < 10:
        text = f"{value:.2f}"
    elif isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    else:
        text = f"{value:,}"
    return f"{text}{unit}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("pass" if ok else "MISS")


class Table:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, scenario, size, metric, median=None, p95=None, unit="", target="", ok=None):
        self.rows.append({
            "scenario": scenario, "size": size, "metric": metric,
            "median": median, "p95": p95, "unit": unit, "target": target,
            "result": _verdict(ok),
        })

    def render(self) -> str:
        header = ("scenario", "size", "metric", "median", "p95", "target", "result")
        lines = [
            (r["scenario"], r["size"], r["metric"], _fmt(r["median"], r["unit"]),
             _fmt(r["p95"], r["unit"]), r["target"], r["result"])
            for r in self.rows
        ]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]

        def line(cells):
            return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([line(header), rule, *(line(cells) for cells in lines)])


def _size(n: int) -> str:
    return f"{n:,}"


MILLION = 1_000_000  # issue 12's size: its targets apply from here on


def _live_rows(table: Table, scenario: str, label: str, runs: list[dict]) -> None:
    for run in runs:
        live, api = run["live_ms"], run["api_ms"]
        limit = 100 if run["mailboxes"] >= MILLION else 250
        table.add(scenario, _size(run["mailboxes"]), label, live["median"], live["p95"], " ms",
                  f"p95 ≤ {limit} ms", live["p95"] is not None and live["p95"] <= limit)
        table.add(scenario, _size(run["mailboxes"]), "  row in node store",
                  run["row_visible_ms"]["median"], run["row_visible_ms"]["p95"], " ms")
        table.add(scenario, _size(run["mailboxes"]), "  API response", api["median"],
                  api["p95"], " ms")
        if "refusal_reply_ms" in run:
            refusal = run["refusal_reply_ms"]
            table.add(scenario, _size(run["mailboxes"]), "  old password NO reply",
                      refusal["median"], refusal["p95"], " ms", "Dovecot 500 ms tick")
    if len(runs) >= 2 and runs[0]["live_ms"]["p95"]:
        ratio = runs[-1]["live_ms"]["p95"] / runs[0]["live_ms"]["p95"]
        size = f"{_size(runs[-1]['mailboxes'])} vs {_size(runs[0]['mailboxes'])}"
        limit = 1.2 if runs[-1]["mailboxes"] >= MILLION else 1.5
        table.add(scenario, size, "p95 ratio", None, round(ratio, 2), "×", f"≤ {limit}×",
                  ratio <= limit)


def build(results: dict) -> Table:
    s = results["scenarios"]
    table = Table()
    if s.get("B1"):
        _live_rows(table, "B1", "create → IMAP login", s["B1"])
    if s.get("B2"):
        _live_rows(table, "B2", "rotate → new in, old out", s["B2"])
    if b3 := s.get("B3"):
        size = f"{_size(b3['rows'])} into {_size(b3['mailboxes_before'])}"
        limit = 15 if b3["mailboxes_before"] >= MILLION else 60
        table.add("B3", size, "bulk → all live", b3["total_seconds"], None, " s", f"≤ {limit} s",
                  b3["total_seconds"] <= limit)
        table.add("B3", size, "  of which hashing", b3["hashing"]["seconds_for_all_rows"], None,
                  " s", f"{b3['hashing_share_of_total']:.0%} of total")
    for b4 in s.get("B4", []):
        size = _size(b4["mailboxes"])
        full, noop = b4["full"], b4["noop"]
        empty, idle = (60, 5) if b4["mailboxes"] >= MILLION else (20, 2)
        table.add("B4", size, "full reconcile from empty", full["seconds"], None, " s",
                  f"≤ {empty} s", full["seconds"] <= empty)
        if "cpu_seconds" in full:
            table.add("B4", size, "  of which CPU (process)", full["cpu_seconds"], None, " s")
        table.add("B4", size, "no-op full reconcile", noop["seconds"], None, " s", f"≤ {idle} s",
                  noop["seconds"] <= idle)
        if "cpu_seconds" in noop:
            table.add("B4", size, "  of which CPU (process)", noop["cpu_seconds"], None, " s")
        if "self_maxrss_mb" in full:  # the Python process; the figure below adds its children
            own = max(full["self_maxrss_mb"], noop["self_maxrss_mb"])
            table.add("B4", size, "reconcile peak RSS (process)", round(own, 1), None, " MB",
                      "≤ 500 MB", own <= 500)
        peak = max(full["peak_rss_mb"], noop["peak_rss_mb"])
        table.add("B4", size, "  incl. config validators run", peak, None, " MB")
    if worker := s.get("worker_peak_rss_mb"):
        # The portal's worker, as shipped and forced to full passes; the rewrite-everything
        # worker is B7's baseline (a design the portal does not use), shown without a target.
        ours = [worker.get(mode) for mode in ("incremental", "forced_full")]
        peak = max((v for v in ours if v is not None), default=None)
        if peak is not None:
            table.add("B4", "", "worker peak RSS (B1–B7)", peak, None, " MB", "≤ 500 MB",
                      peak <= 500)
        if worker.get("rewrite") is not None:
            table.add("B4", "", "  B7 rewrite baseline's worker", worker["rewrite"], None, " MB")
    _list_rows(table, s.get("B5", []))
    if b6 := s.get("B6"):
        size = f"{_size(b6['messages_per_config'])} msgs"
        table.add("B6", size, "portal maps msg/s", b6["portal_per_second"], None, "/s")
        table.add("B6", size, "static maps msg/s", b6["baseline_per_second"], None, "/s")
        table.add("B6", size, "  static, no DKIM tables", b6["baseline_no_dkim_tables_per_second"],
                  None, "/s", f"{b6['domains']:,}-domain SigningTable")
        table.add("B6", size, "throughput ratio", b6["ratio"], None, "×", "≥ 0.8×",
                  b6["ratio"] >= 0.8)
    if b8 := s.get("B8"):
        size = f"{_size(b8['messages_per_config'])} msgs"
        table.add("B8", size, "pipeline msg/s (our Rspamd)", b8["portal_per_second"], None, "/s")
        table.add("B8", size, "stock Rspamd msg/s", b8["stock_per_second"], None, "/s")
        table.add("B8", size, "throughput ratio", b8["ratio"], None, "×", "≥ 0.9×",
                  b8["ratio"] >= 0.9)
        for name, label in (("portal", "DATA → 250, ours"), ("stock", "DATA → 250, stock")):
            table.add("B8", size, f"  {label}", b8["data_ms_p50"][name],
                      b8["data_ms_p95"][name], " ms")
        table.add("B8", size, "added latency per message", None, b8["added_ms_p95"], " ms")
        table.add("B8", "", "Rspamd RSS (all processes)", b8["rspamd_rss_mb"]["portal"], None,
                  " MB")
    if b9 := s.get("B9"):
        for key, label in (("latency_1", "API send → at MX, 1 sender"),
                           ("latency_50", "API send → at MX, 50 senders")):
            table.add("B9", f"{b9[key]['n']} msgs", label, b9[key]["median_ms"],
                      b9[key]["p95_ms"], " ms")
        table.add("B9", "50 senders", "API accepted msg/s", b9["api_accepted_per_s"], None, "/s")
        table.add("B9", "4 connections", "SMTP submission msg/s", b9["smtp_accepted_per_s"],
                  None, "/s")
        table.add("B9", "", "API vs submission", b9["api_vs_smtp"], None, "×")
        lag = b9["event_lag"]
        table.add("B9", f"{lag['n']} msgs", "event lag MX → API delivered", lag["median_ms"],
                  lag["p95_ms"], " ms", "p95 ≤ 1 s", lag["p95_ms"] <= 1000)
    if b11 := s.get("B11"):
        size = f"{b11['messages']:,} msgs"
        table.add("B11", size, f"backup → S3 MB/s ({b11['megabytes']} MB)",
                  b11["backup_mb_per_s"], None, " MB/s")
        table.add("B11", size, "backup msg/s", b11["backup_msg_per_s"], None, "/s")
        table.add("B11", size, "incremental backup, nothing new", b11["incremental_s"], None,
                  " s")
        table.add("B11", size, "restore ← S3 MB/s", b11["restore_mb_per_s"], None, " MB/s")
        table.add("B11", size, "restore msg/s", b11["restore_msg_per_s"], None, "/s")
    if b10 := s.get("B10"):
        _isolation_rows(table, b10)
    labels = {"B7": ("full render + diff → login", "(the portal's full pass)"),
              "B7_rewrite": ("rewrite all + reload → login", "(docker-mailserver's)")}
    for key, (label, design) in labels.items():
        if not (b7 := s.get(key)):
            continue
        size = _size(b7["mailboxes"])
        live = b7["live_ms"]
        table.add("B7", size, label, live["median"], live["p95"], " ms", design)
        if b1 := [r for r in s.get("B1", []) if r["mailboxes"] == b7["mailboxes"]]:
            ratio = live["median"] / b1[0]["live_ms"]["median"]
            table.add("B7", size, "  × B1 (median)", round(ratio, 1), None, "×", "≥ 50×",
                      ratio >= 50)
    return table


def _isolation_rows(table: Table, b10: dict) -> None:
    size = f"B {_size(b10['node_b_mailboxes'])}, A {_size(b10['busy_mailboxes'])}"
    phases = (("idle", "create → login on B, A idle"),
              ("busy", "  A rebuilding from empty"),
              ("niced", "  A rebuilding, nice 10"))
    for key, label in phases:
        live = b10[key]["live_ms"]
        load = "load " + " ".join(f"{x:.1f}" for x in b10[key]["loadavg"])
        table.add("B10", size, label, live["median"], live["p95"], " ms", load)
    for key, label in (("busy", "  busy / idle"), ("niced", "  niced busy / idle")):
        ratio = b10[f"{key}_ratio_p95"]
        table.add("B10", size, label, b10[f"{key}_ratio_median"], ratio, "×", "p95 ≤ 1.2×",
                  ratio <= 1.2)


def _list_rows(table: Table, runs: list[dict]) -> None:
    labels = {"page": "/mail-admin/ list", "api": "GET /api/v1/mailboxes",
              "page_deep": "  list, middle page", "api_deep": "  API, middle offset"}
    for run in runs:
        for key, label in labels.items():
            if key not in run:
                continue
            server = run[key]["server_ms"]
            limit = 50 if run["mailboxes"] >= MILLION else 100
            ok = server["median"] <= limit if not key.endswith("deep") else None
            table.add("B5", _size(run["mailboxes"]), f"{label} (server)", server["median"],
                      server["p95"], " ms", f"median ≤ {limit} ms" if ok is not None else "", ok)
            http = run[key]["http_ms"]
            table.add("B5", _size(run["mailboxes"]), f"{label} (HTTP)", http["median"],
                      http["p95"], " ms")
    if len(runs) >= 2:
        for key in ("page", "api"):
            counts = [tuple(run[key]["queries"]) for run in runs if key in run]
            constant = len(set(counts)) == 1 and len(counts[0]) == 1
            shown = " / ".join(",".join(map(str, c)) for c in counts)
            table.add("B5", "all sizes", f"{labels[key]} queries", shown, None, "",
                      "constant", constant)


def main() -> None:
    """`python -m bench.report [var/bench/results.json]`: print a results file's table again."""
    import json
    import sys
    from pathlib import Path

    from bench.env import OUT_DIR

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR / "results.json"
    print(build(json.loads(path.read_text())).render())


if __name__ == "__main__":
    main()
