"""moto's S3 server on loopback (a real S3 API over HTTP), one bucket per test."""

import logging
import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.stack import free_ports


@pytest.fixture(scope="session")
def s3_server():
    port = free_ports(1)[0]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server, settings):
    """A fresh bucket, and the backup settings pointing at it (as S3 is configured in
    production: endpoint, region, keys, path-style addressing)."""
    bucket = f"mh-{uuid.uuid4().hex[:12]}"
    settings.MAILHOST_BACKUP_S3_ENDPOINT = s3_server
    settings.MAILHOST_BACKUP_S3_REGION = "us-east-1"
    settings.MAILHOST_BACKUP_S3_BUCKET = bucket
    settings.MAILHOST_BACKUP_S3_ACCESS_KEY_ID = "testing"
    settings.MAILHOST_BACKUP_S3_SECRET_ACCESS_KEY = "testing"
    settings.MAILHOST_BACKUP_S3_FORCE_PATH_STYLE = True
    settings.MAILHOST_BACKUP_S3_PREFIX = ""
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket)
    return client, bucket
