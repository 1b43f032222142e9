"""The Sieve renderer: golden files, escaping, and what Pigeonhole's own tools make of it."""

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from mailhost.backend.sieve import SieveSpec, VacationSpec, quote, render_sieve, text_literal

GOLDEN = Path(__file__).parent / "golden"
ADDRESS = "anna@example.test"
AWAY = VacationSpec(
    subject="Out of office",
    body="I am away until Monday.\nFor urgent matters write to bob@example.test.",
    start=dt.date(2026, 7, 1),
    end=dt.date(2026, 7, 14),
)
CASES = {
    "forward_keep_copy": SieveSpec(ADDRESS, ("x@elsewhere.test", "y@elsewhere.test"), True),
    "forward_no_copy": SieveSpec(ADDRESS, ("x@elsewhere.test",), False),
    "vacation_dated": SieveSpec(ADDRESS, vacation=AWAY),
    "vacation_open_ended": SieveSpec(
        ADDRESS, vacation=VacationSpec(subject="", body="Away.", start=dt.date(2026, 7, 1))
    ),
    "vacation_undated": SieveSpec(ADDRESS, vacation=VacationSpec(subject="Away", body="Away.")),
    "vacation_and_forward": SieveSpec(ADDRESS, ("x@elsewhere.test",), False, AWAY),
    "hostile_strings": SieveSpec(
        ADDRESS,
        vacation=VacationSpec(
            subject='Away "now" \\ back; redirect "evil@x.test";',
            body='.\n..\n.leading dot\n"quoted" \\ back\\slash\n.\nstop;',
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_it_renders_the_golden_script(name):
    expected = (GOLDEN / f"{name}.sieve").read_text()
    assert render_sieve(CASES[name]) == expected


def test_it_renders_nothing_when_there_is_nothing_to_do():
    assert render_sieve(SieveSpec(ADDRESS)) is None
    assert render_sieve(SieveSpec(ADDRESS, (), False, None)) is None


def test_it_escapes_quoted_strings():
    assert quote('a"b\\c') == '"a\\"b\\\\c"'


def test_it_dot_stuffs_multiline_text():
    assert text_literal(".\nx\n..y") == "text:\n..\nx\n...y\n.\n"
    assert text_literal("a\r\nb") == "text:\na\nb\n.\n"


def test_it_is_deterministic():
    spec = CASES["vacation_and_forward"]
    assert render_sieve(spec) == render_sieve(spec)


# --- Pigeonhole itself: the scripts compile, and mean what we say -------------------------

needs_pigeonhole = pytest.mark.skipif(
    not (shutil.which("sievec") and shutil.which("sieve-test")), reason="dovecot-sieve missing"
)


@pytest.fixture
def sieve_dir():
    # sieve-test drops privileges to the mail user, who must be able to write here.
    path = Path(tempfile.mkdtemp(prefix="mh-sieve-", dir="/tmp"))
    (path / "home").mkdir()
    (path / "dovecot.conf").write_text(
        f"mail_uid = mail\nmail_gid = mail\nfirst_valid_uid = 8\n"
        f"mail_home = {path}/home\nmail_location = maildir:{path}/home/Maildir\n"
    )
    (path / "message.eml").write_text(
        "From: carol@sender.test\nTo: anna@example.test\nSubject: Hello\n"
        "Message-ID: <1@sender.test>\nDate: Wed, 01 Jul 2026 10:00:00 +0000\n\nHi!\n"
    )
    shutil.chown(path, "mail", "mail")
    for child in path.rglob("*"):
        shutil.chown(child, "mail", "mail")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _sieve_test(directory: Path, script: str) -> str:
    path = directory / "script.sieve"
    path.write_text(script)
    shutil.chown(path, "mail", "mail")
    result = subprocess.run(
        [
            "sieve-test",
            "-c",
            str(directory / "dovecot.conf"),
            str(path),
            str(directory / "message.eml"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "HOME": str(directory)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@needs_pigeonhole
@pytest.mark.parametrize("name", sorted(CASES))
def test_it_compiles_with_sievec(name, sieve_dir):
    path = sieve_dir / f"{name}.sieve"
    path.write_text(render_sieve(CASES[name]))
    result = subprocess.run(
        ["sievec", str(path), str(sieve_dir / f"{name}.svbin")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr + result.stdout


@needs_pigeonhole
def test_it_keeps_hostile_text_as_text(sieve_dir):
    out = _sieve_test(sieve_dir, render_sieve(CASES["hostile_strings"]))
    assert 'subject : Away "now" \\ back; redirect "evil@x.test";' in out
    assert '.\n..\n.leading dot\n"quoted" \\ back\\slash\n.\nstop;' in out
    assert "redirect message to" not in out  # the injected redirect stayed a subject


@needs_pigeonhole
def test_it_forwards_without_a_copy_when_asked(sieve_dir):
    out = _sieve_test(sieve_dir, render_sieve(CASES["forward_no_copy"]))
    assert "redirect message to: <x@elsewhere.test>" in out
    assert "store message in folder: INBOX" not in out


@needs_pigeonhole
def test_it_forwards_and_keeps_a_copy(sieve_dir):
    out = _sieve_test(sieve_dir, render_sieve(CASES["forward_keep_copy"]))
    assert out.count("redirect message to") == 2
    assert "store message in folder: INBOX" in out


@needs_pigeonhole
def test_it_replies_only_between_the_dates(sieve_dir):
    today = dt.date.today()
    inside = VacationSpec("Away", "Away.", today - dt.timedelta(days=1), today + dt.timedelta(1))
    past = VacationSpec("Away", "Away.", today - dt.timedelta(days=9), today - dt.timedelta(2))
    assert "send vacation message" in _sieve_test(
        sieve_dir, render_sieve(SieveSpec(ADDRESS, vacation=inside))
    )
    assert "send vacation message" not in _sieve_test(
        sieve_dir, render_sieve(SieveSpec(ADDRESS, vacation=past))
    )
