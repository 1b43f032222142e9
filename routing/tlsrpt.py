"""RFC 8460 (SMTP TLS Reporting) aggregate reports built from the TLS outcomes the nodes
recorded: the JSON a daily job will send to each recipient domain's `rua` (issue 18)."""

import datetime as dt

from routing.selectors import tls_report_rows

_POLICY_TYPES = {"sts": "sts", "tlsa": "tlsa"}  # "local" and the rest: no-policy-found


def tlsrpt_report(*, domain: str, day: dt.date, organisation_name: str, contact_info: str,
                  report_id: str) -> dict:
    """The report for mail sent to `domain` on `day` (UTC)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    grouped, successes = tls_report_rows(domain=domain, start=start, end=end)
    policies: dict[tuple, dict] = {}
    for row in grouped:
        kind = _POLICY_TYPES.get(row["policy_type"], "no-policy-found")
        key = (kind, tuple(row["policy_strings"]))
        entry = policies.setdefault(key, {
            "policy": {"policy-type": kind, "policy-string": list(row["policy_strings"]),
                       "policy-domain": domain},
            "summary": {"total-successful-session-count": 0, "total-failure-session-count": 0},
            "failure-details": [],
        })
        entry["summary"]["total-failure-session-count"] += row["n"]
        entry["failure-details"].append({
            "result-type": row["result_type"], "sending-mta-ip": "",
            "receiving-mx-hostname": row["mx_host"], "receiving-ip": row["mx_ip"],
            "failed-session-count": row["n"],
        })
    for entry in policies.values():
        for detail in entry["failure-details"]:
            detail.pop("sending-mta-ip")  # optional; the node's address is not recorded
    if not policies:
        policies[("no-policy-found", ())] = {
            "policy": {"policy-type": "no-policy-found", "policy-domain": domain},
            "summary": {"total-successful-session-count": 0, "total-failure-session-count": 0},
        }
    first = next(iter(policies.values()))
    first["summary"]["total-successful-session-count"] = successes
    return {
        "organization-name": organisation_name,
        "date-range": {"start-datetime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "end-datetime": end.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "contact-info": contact_info,
        "report-id": report_id,
        "policies": list(policies.values()),
    }
