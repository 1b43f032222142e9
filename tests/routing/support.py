"""Shared by the routing tests."""

import json
import subprocess


def postqueue(stack) -> dict[str, dict]:
    """What Postfix itself says is queued: {queue id: its postqueue -j record}."""
    out = subprocess.run(["postqueue", "-c", str(stack.postfix_dir), "-j"], capture_output=True,
                         text=True, check=True).stdout
    return {item["queue_id"]: item for item in map(json.loads, out.splitlines())}
