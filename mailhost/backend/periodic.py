"""The skeleton of a node daemon that does one round of work every few seconds.

`run(argv, description=…, log_name=…, make_step=…)`: reads `--config <json>`, writes the pid
to the config's `pid_file`, calls `make_step(config)()` every `interval_seconds` until SIGTERM,
and never dies of one failed round (it is logged). Used by the inbound guard and the
certificate watcher.
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("mailhost.periodic")


def run(argv: list[str] | None, *, description: str, log_name: str,
        make_step: Callable[[dict], Callable[[], object]]) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {log_name}: %(message)s")
    config = json.loads(args.config.read_text())
    step = make_step(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pid_file = Path(config["pid_file"])
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        while not stop.is_set():
            try:
                step()
            except Exception:  # one bad round must not end the daemon
                logger.exception("%s round failed", log_name)
            stop.wait(config["interval_seconds"])
    finally:
        pid_file.unlink(missing_ok=True)
    return 0
