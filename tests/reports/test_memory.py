"""Memory stays bounded whatever arrives: each hostile submission is read in a fresh Python
process, and that process's peak RSS (VmHWM) is asserted. A report is never held whole:
the submission is read up to the byte cap, decompression stops at its cap, and an aggregate
report's rows are parsed and dropped one by one."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reports.corpus import zip_bomb

ROOT = Path(__file__).resolve().parents[2]
ROW = (b"<record><row><source_ip>192.0.2.%d</source_ip><count>1</count><policy_evaluated>"
       b"<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>"
       b"</row><identifiers><header_from>example.com</header_from></identifiers><auth_results>"
       b"<spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>")
HEAD = (b'<?xml version="1.0"?><feedback><report_metadata><org_name>big.example</org_name>'
        b"<report_id>big</report_id><date_range><begin>0</begin><end>86399</end></date_range>"
        b"</report_metadata><policy_published><domain>example.com</domain><p>none</p>"
        b"</policy_published>")

READER = """
import json, sys
from reports import parsing
limits = parsing.Limits(max_records=10**6)
outcome, rows = "accepted", 0
try:
    with open(sys.argv[1], "rb") as stream:
        data = parsing.read_submission(stream, limits)
    for report in parsing.reports_in(data, limits):
        for record in getattr(report, "records", ()):
            rows += 1
except parsing.Rejected as exc:
    outcome = str(exc)
# VmHWM: this process image's peak RSS (getrusage's ru_maxrss may carry the parent's peak
# across fork and exec).
with open("/proc/self/status") as status:
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "rows": rows, "peak_mib": peak_kib / 1024}))
"""


def aggregate_of(size: int) -> bytes:
    rows = b"".join(ROW % (i % 250) for i in range(size // len(ROW) + 1))
    return HEAD + rows + b"</feedback>"


def read_in_a_subprocess(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", READER, str(path)], cwd=ROOT, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> float:
    path = tmp_path_factory.mktemp("mem") / "empty.xml"
    path.write_bytes(b"<feedback/>")
    return read_in_a_subprocess(path)["peak_mib"]


# Parsing's own working set on top of the interpreter: the caps (8 MiB received, 25 MiB
# decompressed) and the parser's buffers. A report held whole (or a bomb inflated) would be
# hundreds of MiB.
HEADROOM_MIB = 80


@pytest.mark.parametrize("name", ["plain-50mb", "gzip-50mb", "zip-bomb-1gib", "big-but-fine"])
def test_it_reads_hostile_submissions_in_bounded_memory(tmp_path, baseline, name):
    path = tmp_path / name
    if name == "plain-50mb":
        path.write_bytes(aggregate_of(50 * 1024 * 1024))
    elif name == "gzip-50mb":
        path.write_bytes(gzip.compress(aggregate_of(50 * 1024 * 1024), compresslevel=6))
    elif name == "zip-bomb-1gib":
        path.write_bytes(zip_bomb(1024**3))
    else:  # 20 MiB of rows, gzipped: within every cap, so all ~48,000 rows are read
        path.write_bytes(gzip.compress(aggregate_of(20 * 1024 * 1024)))
    result = read_in_a_subprocess(path)
    if name == "big-but-fine":
        assert result["outcome"] == "accepted" and result["rows"] > 40_000
    else:
        assert "larger than" in result["outcome"]
    print(name, result, f"baseline {baseline:.1f} MiB")
    assert result["peak_mib"] < baseline + HEADROOM_MIB, (result, baseline)
