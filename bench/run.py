"""`python -m bench.run --size small|full`: the whole benchmark suite against a real stack.

Order (each size level = N domains × 100 mailboxes, seeded in bulk):
  for each level (small: 1,000 then 5,000; full: 1,000, 100,000 then 1,000,000):
      seed → B4 (full reconcile onto an emptied node, start the stack, no-op reconcile)
      → B1 (create → live) → B2 (rotate → live) → B5 (list pages)
      at the second level (full: 100,000, before the next level; small: 5,000, last of all):
      B10 (a second node's create → live while this one rebuilds from empty)
  at the largest level: B7 (worker forced to rebuild everything, two designs)
      → B6 (mail throughput) → B3 (bulk create; last, as it adds mailboxes) → B9 (send API)
      → B11 (backup and restore through S3)
Exit status: 0 when every scenario ran (whatever the timings), 1 when one failed, 2 on a
set-up failure. Nothing is left running: the runner checks before it exits.
"""

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import sys
import time
import traceback

from bench import env as bench_env
from bench.context import SIZES, BenchError, Ctx
from bench.procs import group_members

log_started = time.monotonic()


def say(message: str) -> None:
    print(f"[bench {time.monotonic() - log_started:7.1f}s] {message}", flush=True)


class Runner:
    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.results: dict = {"scenarios": {}, "errors": [], "timeline": []}
        self.started_groups: list[int] = []

    # --- bookkeeping -------------------------------------------------------------------------

    def step(self, name: str, fn, *args, **kwargs):
        """Run one scenario; an exception is recorded (the run goes on, and exits 1)."""
        say(f"{name} …")
        started = time.monotonic()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            say(f"{name} FAILED: {exc}")
            self.results["errors"].append(
                {"step": name, "error": f"{type(exc).__name__}: {exc}",
                 "traceback": traceback.format_exc()}
            )
            return None
        seconds = time.monotonic() - started
        self.results["timeline"].append({"step": name, "seconds": round(seconds, 1)})
        say(f"{name} done in {seconds:.1f} s")
        return result

    def record(self, key: str, value, *, many: bool = False) -> None:
        if value is None:
            return
        if many:
            self.results["scenarios"].setdefault(key, []).append(value)
        else:
            self.results["scenarios"][key] = value

    # --- set-up ------------------------------------------------------------------------------

    def setup(self) -> None:
        from django.core.management import call_command

        from bench import procs, seed
        from mailhost.backend.config import NodeConfig
        from mailhost.backend.stack import Stack

        ctx = self.ctx
        say(f"database {bench_env.BENCH_DB}, Redis {ctx.env.broker_url}, "
            f"state dir {ctx.env.state_dir}")
        procs.recreate_database(ctx.env)
        procs.flush_redis(ctx.env)
        started = time.monotonic()
        call_command("migrate", verbosity=0, interactive=False)
        say(f"migrated in {time.monotonic() - started:.1f} s")
        self.results["machine"] = procs.machine_info(ctx.env)
        ctx.tenant = seed.setup_tenant()
        ctx.stack = Stack(NodeConfig.from_settings(state_dir=ctx.env.state_dir))

    def start_services(self) -> None:
        from bench import procs
        from bench.clients import Api
        from bench.imap import ImapRace
        from nodes.queues import node_queue

        ctx = self.ctx
        ctx.web = procs.start_web(ctx.env)
        self.started_groups.append(ctx.web.pid)
        ctx.worker = procs.start_worker(ctx.env, node_queue(bench_env.NODE_NAME))
        self.started_groups.append(ctx.worker.pid)
        ctx.api = Api(ctx.env.web_port, ctx.tenant.token)
        ctx.probe = ImapRace(*ctx.stack.address("imap"))

    def swap_worker(self, mode: str) -> float | None:
        """Replace the worker by one in `mode`; returns the old one's peak RSS (MB)."""
        from bench import procs
        from nodes.queues import node_queue

        ctx = self.ctx
        ctx.settle()
        peak = ctx.worker.peak_rss_mb()
        ctx.worker.stop()
        ctx.worker = procs.start_worker(ctx.env, node_queue(bench_env.NODE_NAME), mode=mode)
        self.started_groups.append(ctx.worker.pid)
        return peak

    # --- the run -----------------------------------------------------------------------------

    def seed_and_reconcile(self, domains: int) -> None:
        """Seed `domains` domains of mailboxes and bring the node up to them (B4, unrecorded):
        what every `--only` scenario stands on."""
        from bench import full, seed

        if self.step(f"seed {domains * seed.PER_DOMAIN:,} mailboxes", seed.grow, self.ctx.tenant,
                     domains=domains) is None:
            raise BenchError("seeding failed")
        seed.analyze()
        self.ctx.domains = domains
        if self.step("B4 full reconcile", full.apply_from_empty, self.ctx) is None:
            raise BenchError("the node could not be reconciled")

    def run_inbound_only(self) -> None:
        """`--only B8`: seed the largest level, bring the node up (B4), then B8 alone."""
        from bench import inbound

        ctx, size = self.ctx, self.ctx.size
        self.seed_and_reconcile(size.levels[-1])
        self.record("B8", self.step(f"B8 inbound throughput at {ctx.mailboxes:,}",
                                    inbound.throughput, ctx, rounds=size.mail_rounds,
                                    per_round=size.mail_per_round))

    def run_mail_only(self) -> None:
        """`--only B6`: seed the largest level, bring the node up (B4), then B6 alone."""
        from bench import mailflow

        ctx, size = self.ctx, self.ctx.size
        self.seed_and_reconcile(size.levels[-1])
        self.record("B6", self.step(f"B6 mail throughput at {ctx.mailboxes:,}",
                                    mailflow.throughput, ctx, rounds=size.mail_rounds,
                                    per_round=size.mail_per_round))

    def run_send_only(self) -> None:
        """`--only B9`: seed the first level, bring the node up (B4), start the web and the
        worker, then B9 alone."""
        self.seed_and_reconcile(self.ctx.size.levels[0])
        self.start_services()
        self.run_b9()

    def run_backup_only(self) -> None:
        """`--only B11`: seed the first level, bring the node up (B4), then B11 alone."""
        from bench import full, seed

        ctx = self.ctx
        domains = ctx.size.levels[0]
        if self.step(f"seed {domains * seed.PER_DOMAIN:,} mailboxes", seed.grow, ctx.tenant,
                     domains=domains) is None:
            raise BenchError("seeding failed")
        seed.analyze()
        ctx.domains = domains
        if self.step("B4 full reconcile", full.apply_from_empty, ctx) is None:
            raise BenchError("the node could not be reconciled")
        self.run_b11()

    def run_b11(self) -> None:
        from bench import backup

        size = self.ctx.size
        messages, kb = (1000, 20) if size.name == "small" else (5000, 40)
        self.record("B11", self.step(f"B11 backup/restore of {messages:,} × {kb} kB via S3",
                                     backup.throughput, self.ctx, messages=messages,
                                     size=kb * 1000))

    def run_b10_only(self) -> None:
        """`--only B10`: seed B10's level, bring the node up (B4), start the web, then B10."""
        self.seed_and_reconcile(self.ctx.size.levels[self.ctx.size.b10_level])
        self.start_services()
        self.run_b10()

    def run_b10(self) -> None:
        """B10. It leaves the bench's node half rebuilt and stopped: it runs where the next
        step rebuilds the node from empty (the next level's B4), or last."""
        from bench import twonodes

        ctx = self.ctx
        node_b = twonodes.NodeB(ctx)
        try:
            node_b.start()
            self.record("B10", self.step(
                f"B10 create → live on node B while node A ({ctx.mailboxes:,}) rebuilds",
                twonodes.isolation, ctx, node_b, samples=ctx.size.b10_samples))
        except Exception as exc:
            say(f"B10 FAILED: {exc}")
            self.results["errors"].append({"step": "B10", "error": f"{type(exc).__name__}: {exc}",
                                           "traceback": traceback.format_exc()})
        finally:
            if node_b.worker is not None and node_b.worker.pid not in self.started_groups:
                self.started_groups.append(node_b.worker.pid)
            for problem in node_b.stop():
                self.results["errors"].append({"step": "B10 tear-down", "error": problem})

    def run_b9(self) -> None:
        from bench import outbound

        ctx = self.ctx
        self.record("B9", self.step(
            f"B9 send API → loopback MX ({outbound.SENDERS} senders)", outbound.send_api, ctx,
            samples=ctx.size.live_samples, per_sender=2 if ctx.size.name == "small" else 4))

    def run(self, *, levels_only: bool = False, bulk_after: bool = False) -> None:
        """Every scenario; with `levels_only` (`--only B1`), the levels alone: seed, B4, B1,
        B2 and B5 at each, and nothing after them but B3 with `bulk_after` (`--only B3`)."""
        from bench import full, inbound, lists, live, mailflow, seed

        ctx, size = self.ctx, self.ctx.size
        for index, domains in enumerate(size.levels):
            n = domains * seed.PER_DOMAIN
            seeded = self.step(f"seed {n:,} mailboxes in {domains:,} domains", seed.grow,
                               ctx.tenant, domains=domains)
            if seeded is None:
                raise BenchError("seeding failed")
            seed.analyze()
            ctx.domains = domains
            b4 = self.step(f"B4 full reconcile of {n:,} from an empty node", full.apply_from_empty,
                           ctx)
            if b4 is None:
                raise BenchError("the node could not be reconciled; nothing else can run")
            self.record("B4", b4, many=True)
            if index == 0:
                self.start_services()
            self.record("B1", self.step(f"B1 create → live at {n:,}", live.create_live, ctx,
                                        tag=f"b1l{index}x", samples=size.live_samples), many=True)
            self.record("B2", self.step(f"B2 rotate → live at {n:,}", live.rotate_live, ctx,
                                        samples=size.live_samples), many=True)
            self.record("B5", self.step(f"B5 list pages at {n:,}", lists.list_pages, ctx,
                                        repeats=size.list_repeats), many=True)
            if not levels_only and index == size.b10_level < len(size.levels) - 1:
                self.run_b10()  # B10 leaves the node half rebuilt: the next level's B4 redoes it
        if levels_only:
            if bulk_after:
                self.run_b3()
            return
        n = ctx.mailboxes
        peaks = {"incremental": self.swap_worker("full")}
        self.record("B7", self.step(f"B7 full render + diff per change → live at {n:,}",
                                    live.create_live, ctx, tag="b7x", samples=size.rebuild_samples,
                                    timeout=600))
        peaks["forced_full"] = self.swap_worker("rewrite")
        self.record("B7_rewrite", self.step(f"B7 rewrite everything per change → live at {n:,}",
                                            live.create_live, ctx, tag="b7r",
                                            samples=size.rebuild_samples, timeout=600))
        peaks["rewrite"] = self.swap_worker("incremental")
        self.record("worker_peak_rss_mb", peaks)
        self.record("B6", self.step(f"B6 mail throughput at {n:,}", mailflow.throughput, ctx,
                                    rounds=size.mail_rounds, per_round=size.mail_per_round))
        self.record("B8", self.step(f"B8 inbound throughput at {n:,}", inbound.throughput, ctx,
                                    rounds=size.mail_rounds, per_round=size.mail_per_round))
        self.run_b3()
        self.run_b9()
        self.run_b11()
        if size.b10_level == len(size.levels) - 1:
            self.run_b10()  # last: it leaves the node half rebuilt

    def run_b3(self) -> None:
        """B3, last at its level: it adds the mailboxes it creates."""
        from bench import bulk

        ctx, rows = self.ctx, self.ctx.size.bulk_rows
        self.record("B3", self.step(f"B3 bulk {rows:,} into {ctx.mailboxes:,}", bulk.bulk_create,
                                    ctx, rows=rows))

    # --- tear-down ---------------------------------------------------------------------------

    def teardown(self, *, keep_db: bool) -> list[str]:
        from bench import procs

        ctx, problems = self.ctx, []
        for child in (ctx.worker, ctx.web):
            if child is not None:
                try:
                    child.stop()
                except Exception as exc:
                    problems.append(f"stopping {child.name}: {exc}")
        if ctx.stack is not None:
            try:
                ctx.stack.stop()
            except Exception as exc:
                problems.append(f"stopping the mail stack: {exc}")
            if ctx.stack.processes():
                problems.append(f"mail stack processes left: {sorted(ctx.stack.processes())}")
        for pgid in self.started_groups:
            if left := group_members(pgid):
                problems.append(f"processes left in group {pgid}: {left}")
        shutil.rmtree(ctx.env.state_dir, ignore_errors=True)
        from django.db import connections

        connections.close_all()
        try:
            procs.flush_redis(ctx.env)
            if not keep_db:
                procs.drop_database(ctx.env)
        except Exception as exc:
            problems.append(f"cleaning the database/Redis: {exc}")
        return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--keep-db", action="store_true", help="keep mailhost_bench afterwards")
    parser.add_argument("--only", choices=["B1", "B2", "B3", "B5", "B6", "B8", "B9", "B10",
                                           "B11"],
                        help="run one scenario (after seeding); B1, B2 and B5: the three at "
                             "each level, nothing after the levels; B3: those, then B3")
    parser.add_argument("--levels", type=lambda text: tuple(int(n) for n in text.split(",")),
                        help="domains of 100 mailboxes at each level instead of the size's, "
                             "e.g. 10,1000 for 1,000 and 100,000")
    args = parser.parse_args(argv)

    env = bench_env.configure()
    import django

    django.setup()
    from bench import report

    size = SIZES[args.size]
    if args.levels:
        size = dataclasses.replace(size, levels=args.levels)
    ctx = Ctx(env=env, size=size)
    runner = Runner(ctx)
    runner.results |= {
        "size": args.size,
        "command": f"make bench SIZE={args.size}",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    status = 0
    started = time.monotonic()
    try:
        runner.setup()
        if args.only == "B6":
            runner.run_mail_only()
        elif args.only == "B8":
            runner.run_inbound_only()
        elif args.only == "B9":
            runner.run_send_only()
        elif args.only == "B10":
            runner.run_b10_only()
        elif args.only == "B11":
            runner.run_backup_only()
        else:
            runner.run(levels_only=args.only in ("B1", "B2", "B3", "B5"),
                       bulk_after=args.only == "B3")
    except Exception as exc:  # BenchError, ChildError, StackError, database down …
        say(f"set-up failed: {exc}")
        runner.results["errors"].append(
            {"step": "set-up", "error": f"{type(exc).__name__}: {exc}",
             "traceback": traceback.format_exc()}
        )
        status = 2
    except KeyboardInterrupt:
        say("interrupted; cleaning up")
        status = 130
    finally:
        problems = runner.teardown(keep_db=args.keep_db)
    for problem in problems:
        runner.results["errors"].append({"step": "tear-down", "error": problem})
        say(f"tear-down: {problem}")
    runner.results["total_seconds"] = round(time.monotonic() - started, 1)
    runner.results["loadavg_at_end"] = os.getloadavg()
    table = report.build(runner.results)
    runner.results["table"] = table.rows
    out = bench_env.OUT_DIR / "results.json"
    out.write_text(json.dumps(runner.results, indent=2, default=str) + "\n")
    print()
    print(f"Mailhost benchmarks, SIZE={args.size}, {runner.results['total_seconds']} s "
          f"({runner.results.get('machine', {}).get('nproc', '?')} CPUs, load "
          f"{' '.join(f'{x:.1f}' for x in runner.results['loadavg_at_end'])})")
    print(table.render())
    print(f"\nraw samples and machine info: {out.relative_to(bench_env.ROOT)}")
    for error in runner.results["errors"]:
        print(f"ERROR in {error['step']}: {error['error']}", file=sys.stderr)
    if status == 0 and runner.results["errors"]:
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
