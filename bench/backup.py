"""B11: backup and restore throughput against a real S3 API on loopback (moto's server).

Mail is put into a few seeded mailboxes with Dovecot's own import (random bodies, so nothing
compresses or deduplicates), then: a first backup (every message encrypted and uploaded, then
read back and checked), a second one (incremental: nothing new, one manifest), the mailboxes
wiped, and a restore (every object downloaded, checked, imported with flags and folders).
Throughput is message bytes over wall time, as the operator waits for it.
"""

import email.utils
import logging
import os
import shutil
import time
import uuid

import boto3
from moto.server import ThreadedMotoServer

from bench.context import BenchError, Ctx
from bench.env import free_ports
from bench.seed import seeded_address
from mailhost.backend import mailsnap

MAILBOXES = 10


def _message(address: str, index: int, size: int) -> bytes:
    body = os.urandom(size * 3 // 4).hex()[: size]  # hex of random bytes: no compression
    lines = "\n".join(body[i:i + 76] for i in range(0, len(body), 76))
    return (f"From: bench@example.org\nTo: {address}\nSubject: backup bench {index}\n"
            f"Message-ID: <b11.{index}.{uuid.uuid4().hex}@example.org>\n"
            f"Date: {email.utils.formatdate()}\n\n{lines}\n").encode()


def _fill(conf, address: str, count: int, size: int) -> int:
    """`count` messages into the mailbox, half of them flagged and in a folder: bytes added."""
    workdir = mailsnap.private_dir("mhb11")
    try:
        staged, total = [], 0
        for i in range(count):
            path = workdir / f"in{i}"
            path.write_bytes(_message(address, i, size))
            total += path.stat().st_size
            staged.append((mailsnap.SnapMessage(
                folder="INBOX" if i % 2 else "Archive", guid=f"b11.{uuid.uuid4().hex}",
                flags=("\\Seen",) if i % 3 else ("\\Seen", "\\Flagged"), keywords=(),
                date=int(time.time()), size=0), path))
        mailsnap.stage_maildir(workdir / "m", staged)
        mailsnap.import_maildir(conf, address, workdir / "m")
        return total
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def throughput(ctx: Ctx, *, messages: int, size: int) -> dict:
    from backups.selectors import Scope
    from backups.services import backup_run, restore_run
    from backups.targets import S3Target
    from mailboxes.models import Mailbox
    from tenants.access import Actor

    actor = Actor(system="bench")
    addresses = [seeded_address(i * 7) for i in range(MAILBOXES)]
    boxes = [Mailbox.objects.select_related("domain__organisation", "domain__node").get(
        local_part=a.split("@")[0], domain__name=a.split("@")[1]) for a in addresses]
    org = boxes[0].domain.organisation
    scope = Scope(kind="domain", label="domain:b11.bench", organisations=[org],
                  mailboxes={org.pk: boxes})
    conf = ctx.stack.dovecot_conf
    total = sum(_fill(conf, a, messages // MAILBOXES, size) for a in addresses)
    port = free_ports(1)[0]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="bench", aws_secret_access_key="bench").create_bucket(
            Bucket="bench")
        target = S3Target(bucket="bench", endpoint=endpoint, region="us-east-1",
                          access_key="bench", secret_key="bench", path_style=True)
        first, backup_s = _timed(backup_run, actor=actor, scope=scope, target=target)
        second, incremental_s = _timed(backup_run, actor=actor, scope=scope, target=target)
        for address in addresses:
            mailsnap.wipe_mail(conf, address)
        restored, restore_s = _timed(restore_run, actor=actor, scope=scope, target=target)
    finally:
        server.stop()
        for address in addresses:
            mailsnap.wipe_mail(conf, address)
    if restored.messages != first.messages or second.objects_uploaded != 1:
        raise BenchError(f"backed up {first.messages}, restored {restored.messages}, "
                         f"incremental uploaded {second.objects_uploaded} objects")
    mb = total / 1e6
    return {
        "messages": first.messages, "megabytes": round(mb, 1), "mailboxes": MAILBOXES,
        "backup_s": round(backup_s, 2), "backup_mb_per_s": round(mb / backup_s, 1),
        "backup_msg_per_s": round(first.messages / backup_s, 1),
        "incremental_s": round(incremental_s, 2),
        "restore_s": round(restore_s, 2), "restore_mb_per_s": round(mb / restore_s, 1),
        "restore_msg_per_s": round(restored.messages / restore_s, 1),
        "uploaded_bytes": first.bytes,
    }


def _timed(fn, **kwargs):
    started = time.monotonic()
    result = fn(**kwargs)
    return result, time.monotonic() - started
