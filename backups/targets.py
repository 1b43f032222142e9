"""Where backups go: a local directory or S3-compatible object storage, behind one small
interface (put / get / list / delete / exists). Names are "/"-separated keys the backup service
makes (hex, a few fixed words); a name outside that alphabet is refused, never joined to a path.
"""

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class TargetError(Exception):
    """The target is not configured, not reachable, or refused the operation."""


def checked_name(name: str) -> str:
    if not _NAME.match(name) or ".." in name:
        raise TargetError(f"refusing the object name {name!r}")
    return name


class Target(Protocol):
    label: str

    def put(self, name: str, source: BinaryIO) -> None: ...
    def get(self, name: str, target: BinaryIO) -> None: ...
    def list(self, prefix: str) -> Iterator[str]: ...
    def delete(self, name: str) -> None: ...
    def exists(self, name: str) -> bool: ...


class DirTarget:
    """A directory (a mounted disk, a NAS): files written beside the target, then renamed."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.label = f"dir:{self.root}"

    def _path(self, name: str) -> Path:
        return self.root / checked_name(name)

    def put(self, name: str, source: BinaryIO) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".put-", delete=False) as out:
            shutil.copyfileobj(source, out)
        os.replace(out.name, path)

    def get(self, name: str, target: BinaryIO) -> None:
        try:
            with open(self._path(name), "rb") as source:
                shutil.copyfileobj(source, target)
        except FileNotFoundError:
            raise TargetError(f"{self.label}: {name} is missing") from None

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / checked_name(prefix.rstrip("/"))
        if not base.is_dir():
            return
        for dirpath, _, filenames in os.walk(base):
            for filename in filenames:
                if not filename.startswith(".put-"):
                    yield (Path(dirpath) / filename).relative_to(self.root).as_posix()

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()


class S3Target:
    """S3-compatible storage through boto3 (AWS, MinIO, Garage, moto's server in the tests)."""

    def __init__(self, *, bucket: str, endpoint: str = "", region: str = "", access_key: str = "",
                 secret_key: str = "", path_style: bool = False, prefix: str = ""):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.label = f"s3:{bucket}/{self.prefix}"
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=region or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=Config(s3={"addressing_style": "path" if path_style else "auto"},
                          retries={"max_attempts": 3}),
        )

    def _key(self, name: str) -> str:
        return self.prefix + checked_name(name)

    def put(self, name: str, source: BinaryIO) -> None:
        self.client.upload_fileobj(source, self.bucket, self._key(name))

    def get(self, name: str, target: BinaryIO) -> None:
        try:  # one GET (download_fileobj would HEAD first, then GET)
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
            shutil.copyfileobj(body, target, 1024 * 1024)
        except ClientError as exc:
            raise TargetError(f"{self.label}: {name}: {exc}") from None

    def list(self, prefix: str) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix.rstrip("/")) + "/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix):]

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))

    def exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise TargetError(f"{self.label}: {name}: {exc}") from None
        return True


def s3_from_settings() -> S3Target:
    return S3Target(
        bucket=settings.MAILHOST_BACKUP_S3_BUCKET,
        endpoint=settings.MAILHOST_BACKUP_S3_ENDPOINT,
        region=settings.MAILHOST_BACKUP_S3_REGION,
        access_key=settings.MAILHOST_BACKUP_S3_ACCESS_KEY_ID,
        secret_key=settings.MAILHOST_BACKUP_S3_SECRET_ACCESS_KEY,
        path_style=settings.MAILHOST_BACKUP_S3_FORCE_PATH_STYLE,
        prefix=settings.MAILHOST_BACKUP_S3_PREFIX,
    )


def target_from_spec(spec: str = "") -> Target:
    """"dir:/path", "s3", or "" for the configured default (S3 when a bucket is set, else
    MAILHOST_BACKUP_DIR). TargetError when nothing is configured."""
    spec = spec.strip()
    if spec.startswith("dir:") and spec[4:]:
        return DirTarget(Path(spec[4:]))
    if spec == "s3" or (not spec and settings.MAILHOST_BACKUP_S3_BUCKET):
        if not settings.MAILHOST_BACKUP_S3_BUCKET:
            raise TargetError("No S3 bucket is configured (MAILHOST_BACKUP_S3_BUCKET).")
        return s3_from_settings()
    if not spec and settings.MAILHOST_BACKUP_DIR:
        return DirTarget(Path(settings.MAILHOST_BACKUP_DIR))
    if not spec:
        raise TargetError("No backup target: set MAILHOST_BACKUP_DIR or an S3 bucket.")
    raise TargetError(f"Unknown backup target {spec!r}: use dir:/path or s3.")


def configured() -> bool:
    return bool(settings.MAILHOST_BACKUP_S3_BUCKET or settings.MAILHOST_BACKUP_DIR)
