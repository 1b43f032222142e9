"""The node-local ban store: failed logins, bans and the per-account throttle.

One SQLite file per node (`bans/bans.sqlite` in its state directory, WAL mode) is written by
the node's ban policy server (`mailhost.backend.banpolicy`, which Dovecot asks before and after
every IMAP, POP3, ManageSieve and SMTP AUTH login) and by the portal's two web logins, and read
by Postfix (`check_client_access`) on every public SMTP connection. So bans hold with the
portal, worker, central database and Redis all stopped.

Rules (thresholds in `BanPolicy`):
  * an address with `failures` failed logins within `window_seconds`, on any service, is banned
    for `ban_seconds`: every login from it is refused and Postfix refuses its connections;
  * an account with `account_failures` failed logins within the window, from any addresses, is
    throttled: each further login attempt for it waits `account_delay_seconds` before the
    password is checked. The right password from an address that is not banned still logs in,
    and the throttle ends by itself once the failures age out of the window: no one can lock a
    victim out by guessing its password from elsewhere;
  * addresses in `exempt` (networks) are never counted nor banned.

Plain Python and SQLite, no Django: the policy server runs it on the node.
"""

import contextlib
import ipaddress
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

BANS_DB = "bans/bans.sqlite"  # relative to the node's state directory

# Postfix reads this through a sqlite: map. julianday() rather than strftime('%s'): Postfix
# expands '%' in its queries. The reply code 421 makes Postfix disconnect at once.
POSTFIX_BAN_QUERY = (
    "SELECT '421 4.7.0 Too many failed logins from your address; try again later' FROM bans "
    "WHERE ip='%s' AND until > (julianday('now') - 2440587.5) * 86400.0"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS failures (
    ip TEXT NOT NULL, account TEXT NOT NULL, service TEXT NOT NULL, at REAL NOT NULL,
    spent INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS failures_ip ON failures (ip, at);
CREATE INDEX IF NOT EXISTS failures_account ON failures (account, at);
CREATE INDEX IF NOT EXISTS failures_at ON failures (at);
CREATE TABLE IF NOT EXISTS bans (
    ip TEXT NOT NULL PRIMARY KEY, since REAL NOT NULL, until REAL NOT NULL,
    failures INTEGER NOT NULL, services TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ban_targets (
    ip TEXT NOT NULL, account TEXT NOT NULL, PRIMARY KEY (ip, account));
"""

MAX_ACCOUNT_LENGTH = 320
MAX_DOVECOT_DELAY = 15  # seconds; a longer tarpit would outlast clients' timeouts


@dataclass(frozen=True)
class BanPolicy:
    """Thresholds. Defaults: 10 failures in 10 minutes → banned for 30 minutes."""

    failures: int = 10
    window_seconds: int = 600
    ban_seconds: int = 1800
    account_failures: int = 30
    account_delay_seconds: int = 2
    exempt: tuple[str, ...] = ()
    _networks: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if min(self.failures, self.window_seconds, self.ban_seconds, self.account_failures) < 1:
            raise ValueError("ban thresholds and durations must be at least 1")
        if not 0 <= self.account_delay_seconds <= MAX_DOVECOT_DELAY:
            raise ValueError(f"account_delay_seconds must be 0–{MAX_DOVECOT_DELAY}")
        exempt = tuple(str(ipaddress.ip_network(n, strict=False)) for n in self.exempt)
        object.__setattr__(self, "exempt", exempt)
        object.__setattr__(self, "_networks", tuple(ipaddress.ip_network(n) for n in exempt))

    def exempts(self, ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return any(address.version == n.version and address in n for n in self._networks)

    def as_dict(self) -> dict:
        values = asdict(self)
        values.pop("_networks")
        values["exempt"] = list(self.exempt)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "BanPolicy":
        return cls(**{**values, "exempt": tuple(values.get("exempt", ()))})


@dataclass(frozen=True)
class Ban:
    ip: str
    since: float
    until: float
    failures: int
    services: tuple[str, ...]
    accounts: tuple[str, ...]


@dataclass(frozen=True)
class Throttle:
    account: str
    failures: int
    addresses: int


@dataclass(frozen=True)
class Decision:
    """Dovecot's auth policy answer: -1 refuse, 0 allow, N > 0 wait N seconds, then check."""

    status: int
    message: str = ""


def normalise_ip(ip: str) -> str:
    """The canonical text of an address (Postfix's form): IPv4-mapped IPv6 becomes IPv4.
    Raises ValueError for anything that is not an IP address."""
    address = ipaddress.ip_address(ip.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.compressed


def normalise_account(account: str) -> str:
    return (account or "").strip().lower()[:MAX_ACCOUNT_LENGTH]


class BanStore:
    """The ban store of one node. Each call opens the file, works in one short transaction and
    closes it: the policy server, the portal and Postfix share it."""

    def __init__(self, path: Path | str, policy: BanPolicy):
        self.path = Path(path)
        self.policy = policy

    @contextlib.contextmanager
    def _connect(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            if write:
                # IMMEDIATE: two concurrent failures cannot both miss the threshold.
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            else:
                yield conn
        finally:
            conn.close()

    def ensure_schema(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
        finally:
            conn.close()

    # --- writes ---------------------------------------------------------------------------

    def record_failure(
        self, *, ip: str, account: str, service: str, now: float | None = None
    ) -> Ban | None:
        """Count one failed login; return the ban if this failure started one.

        A failure from an exempt or already banned address is not counted (a banned address
        is refused before its password is checked)."""
        now = time.time() if now is None else now
        ip, account = normalise_ip(ip), normalise_account(account)
        if self.policy.exempts(ip):
            return None
        with self._connect(write=True) as conn:
            if self._active(conn, ip, now):
                return None
            conn.execute(
                "INSERT INTO failures (ip, account, service, at) VALUES (?, ?, ?, ?)",
                (ip, account, service[:32], now),
            )
            self._prune(conn, now)
            since = now - self.policy.window_seconds
            count = conn.execute(
                "SELECT COUNT(*) FROM failures WHERE ip = ? AND at >= ? AND spent = 0", (ip, since)
            ).fetchone()[0]
            if count < self.policy.failures:
                return None
            return self._ban(conn, ip, now, count)

    def _ban(self, conn: sqlite3.Connection, ip: str, now: float, count: int) -> Ban:
        since = now - self.policy.window_seconds
        rows = conn.execute(
            "SELECT DISTINCT account, service FROM failures WHERE ip = ? AND at >= ? AND spent = 0",
            (ip, since),
        ).fetchall()
        services = sorted({service for _, service in rows})
        conn.execute("DELETE FROM ban_targets WHERE ip = ?", (ip,))
        conn.executemany(
            "INSERT OR IGNORE INTO ban_targets (ip, account) VALUES (?, ?)",
            [(ip, account) for account, _ in rows if account],
        )
        conn.execute(
            "INSERT OR REPLACE INTO bans (ip, since, until, failures, services) "
            "VALUES (?, ?, ?, ?, ?)",
            (ip, now, now + self.policy.ban_seconds, count, ",".join(services)),
        )
        # The failures that earned this ban do not count towards the next one.
        conn.execute("UPDATE failures SET spent = 1 WHERE ip = ?", (ip,))
        return self._active(conn, ip, now)

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute("DELETE FROM failures WHERE at < ?", (now - self.policy.window_seconds,))
        expired = [r[0] for r in conn.execute("SELECT ip FROM bans WHERE until <= ?", (now,))]
        for ip in expired:
            conn.execute("DELETE FROM bans WHERE ip = ?", (ip,))
            conn.execute("DELETE FROM ban_targets WHERE ip = ?", (ip,))

    def lift(self, ip: str, now: float | None = None) -> Ban | None:
        """End the ban of `ip` now; return it (None if it was not banned). Its earlier
        failures no longer count."""
        now = time.time() if now is None else now
        ip = normalise_ip(ip)
        with self._connect(write=True) as conn:
            ban = self._active(conn, ip, now)
            conn.execute("DELETE FROM bans WHERE ip = ?", (ip,))
            conn.execute("DELETE FROM ban_targets WHERE ip = ?", (ip,))
            conn.execute("UPDATE failures SET spent = 1 WHERE ip = ?", (ip,))
        return ban

    # --- reads ----------------------------------------------------------------------------

    def decide(self, *, ip: str, account: str, now: float | None = None) -> Decision:
        """What Dovecot (and the portal) should do with a login attempt."""
        now = time.time() if now is None else now
        ip, account = normalise_ip(ip), normalise_account(account)
        if self.policy.exempts(ip):
            return Decision(0)
        with self._connect(write=False) as conn:
            if self._active(conn, ip, now):
                return Decision(-1, "Too many failed logins from your address; try later.")
            if account and self._account_failures(conn, account, now) >= (
                self.policy.account_failures
            ):
                return Decision(self.policy.account_delay_seconds)
        return Decision(0)

    def ban(self, ip: str, now: float | None = None) -> Ban | None:
        now = time.time() if now is None else now
        with self._connect(write=False) as conn:
            return self._active(conn, normalise_ip(ip), now)

    def bans(self, now: float | None = None) -> list[Ban]:
        """Every active ban, newest first."""
        now = time.time() if now is None else now
        with self._connect(write=False) as conn:
            ips = [r[0] for r in conn.execute(
                "SELECT ip FROM bans WHERE until > ? ORDER BY since DESC, ip", (now,)
            )]
            return [ban for ip in ips if (ban := self._active(conn, ip, now))]

    def throttled_accounts(self, now: float | None = None) -> list[Throttle]:
        now = time.time() if now is None else now
        with self._connect(write=False) as conn:
            rows = conn.execute(
                "SELECT account, COUNT(*), COUNT(DISTINCT ip) FROM failures "
                "WHERE at >= ? AND account != '' GROUP BY account HAVING COUNT(*) >= ? "
                "ORDER BY account",
                (now - self.policy.window_seconds, self.policy.account_failures),
            ).fetchall()
        return [Throttle(account, failures, addresses) for account, failures, addresses in rows]

    def _account_failures(self, conn: sqlite3.Connection, account: str, now: float) -> int:
        return conn.execute(
            "SELECT COUNT(*) FROM failures WHERE account = ? AND at >= ?",
            (account, now - self.policy.window_seconds),
        ).fetchone()[0]

    def _active(self, conn: sqlite3.Connection, ip: str, now: float) -> Ban | None:
        row = conn.execute(
            "SELECT since, until, failures, services FROM bans WHERE ip = ? AND until > ?",
            (ip, now),
        ).fetchone()
        if row is None:
            return None
        accounts = tuple(r[0] for r in conn.execute(
            "SELECT account FROM ban_targets WHERE ip = ? ORDER BY account", (ip,)
        ))
        services = tuple(s for s in row[3].split(",") if s)
        return Ban(ip, row[0], row[1], row[2], services, accounts)


def policy_json(*, store: Path, listen: tuple[str, int], key_file: Path, pid_file: Path,
                policy: BanPolicy) -> str:
    """The policy server's config file (rendered by mailhost.backend.config)."""
    return json.dumps(
        {
            "store": str(store),
            "listen": list(listen),
            "key_file": str(key_file),
            "pid_file": str(pid_file),
            "policy": policy.as_dict(),
        },
        indent=2,
        sort_keys=True,
    ) + "\n"
