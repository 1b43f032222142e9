"""The node's MTA-STS resolver: `postfix-mta-sts-resolver` answering Postfix's socketmap.

Run by the stack runner as `python -m mailhost.backend.mtasts --config <state>/mta-sts/
mta-sts.json` (rendered by mailhost/backend/tls_policy.py). It runs the resolver's own daemon
with its config file, its policy cache (SQLite) and its socket under the state directory, with
two things pinned that the daemon otherwise takes from the host:

* **DNS**: every `_mta-sts` TXT lookup goes to the node's own validating resolver (unbound on
  its loopback port), never to whatever /etc/resolv.conf names;
* **trust**: with `ca_file` set, the HTTPS policy fetch verifies against that bundle (the tests'
  CA); otherwise against the system's trust store.

Postfix asks `socketmap:unix:<state>/run/mta-sts/resolver.sock:postfix`; a domain with an
`enforce` policy gets `secure match=<MX patterns> servername=hostname`, anything else NOTFOUND.
With the daemon down, Postfix defers mail (a failed policy lookup is never "no policy").
"""

import argparse
import json
import os
import sys
import types
from pathlib import Path


def _pin_resolver(nameserver: str) -> None:
    import aiodns
    from postfix_mta_sts_resolver import resolver

    class NodeResolver(aiodns.DNSResolver):
        def __init__(self, *args, **kwargs):
            kwargs["nameservers"] = [nameserver]
            super().__init__(*args, **kwargs)

    resolver.aiodns = types.SimpleNamespace(DNSResolver=NodeResolver, error=aiodns.error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text())
    if config.get("ca_file"):
        os.environ["SSL_CERT_FILE"] = config["ca_file"]
    _pin_resolver(config["nameserver"])
    Path(config["pid_file"]).parent.mkdir(parents=True, exist_ok=True)
    from postfix_mta_sts_resolver import daemon

    sys.argv = ["mta-sts-daemon", "-c", config["daemon_config"], "-p", config["pid_file"],
                "-v", "info", "--disable-uvloop"]
    try:
        return daemon.main() or 0
    finally:
        Path(config["pid_file"]).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
