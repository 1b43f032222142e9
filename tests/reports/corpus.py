"""The report corpus (fixtures/, after the RFCs' examples) and hostile submissions built to
order: an attacker's XML bomb, zip bomb, oversized report, broken encodings."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def aggregate(*, domain: str = "example.com", report_id: str = "r-1", org: str = "acme.com",
              begin: int = 1335571200, rows=(("192.0.2.25", 120, "pass", "pass"),)) -> bytes:
    """An RFC 7489 aggregate report with the given rows (ip, count, dkim, spf)."""
    records = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
        f"<disposition>none</disposition><dkim>{dkim}</dkim><spf>{spf}</spf>"
        f"</policy_evaluated></row><identifiers><header_from>{domain}</header_from>"
        f"</identifiers><auth_results><spf><domain>{domain}</domain><result>{spf}</result>"
        f"</spf></auth_results></record>"
        for ip, count, dkim, spf in rows
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><feedback><report_metadata>'
        f"<org_name>{org}</org_name><email>dmarc@{org}</email><report_id>{report_id}</report_id>"
        f"<date_range><begin>{begin}</begin><end>{begin + 86399}</end></date_range>"
        f"</report_metadata><policy_published><domain>{domain}</domain><p>none</p>"
        f"<pct>100</pct></policy_published>{records}</feedback>"
    ).encode()


def zipped(data: bytes, name: str = "report.xml") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def billion_laughs() -> bytes:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    return (f'<?xml version="1.0"?><!DOCTYPE feedback [{entities}]>'
            f"<feedback><report_metadata><org_name>&lol9;</org_name></report_metadata>"
            f"</feedback>").encode()


def external_entity() -> bytes:
    return (b'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<feedback><report_metadata><org_name>&x;</org_name></report_metadata></feedback>")


class _Zeros(io.RawIOBase):
    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = b"\0" * n
        self.left -= n
        return n


def zip_bomb(size: int = 256 * 1024**2) -> bytes:
    """A small zip whose one member inflates to `size` bytes (256 MiB by default)."""
    buffer = io.BytesIO()
    with (zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
          archive.open("report.xml", "w", force_zip64=True) as member):
        stream = _Zeros(size)
        while chunk := stream.read(1024 * 1024):
            member.write(chunk)
    return buffer.getvalue()


def gzip_bomb(size: int = 1024**3) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as out:
        chunk = b"\0" * (1024 * 1024)
        for _ in range(size // len(chunk)):
            out.write(chunk)
    return buffer.getvalue()


def invalid_utf8() -> bytes:
    return aggregate().replace(b"<org_name>acme.com", b"<org_name>acme\xff\xfe.com")
