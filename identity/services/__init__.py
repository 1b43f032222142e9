"""Writes for DKIM keys and the domain's DNS posture.

Keyword-only, atomic, audited, like every service. Two exceptions are not atomic on purpose and
say so: running the DNS checks and publishing by RFC 2136 talk to the network, and a transaction
must not stay open (holding row locks) while a DNS server takes its time; each stores its
outcome in a short transaction of its own.

One module per sub-domain; everything public is re-exported here, so callers import from
`identity.services` as before.
"""

from identity.services.bimi import (  # noqa: F401
    bimi_remove,
    bimi_upload,
)
from identity.services.checks import (  # noqa: F401
    default_lookup,
    dns_check_queue,
    dns_check_run,
    domain_verify_now,
    notify_status_changes,
)
from identity.services.common import (  # noqa: F401
    DnsUnknown,
    PublishFailed,
)
from identity.services.dkim import (  # noqa: F401
    dkim_key_create_initial,
    dkim_retire,
    dkim_rotate_start,
    dkim_rotation_advance,
)
from identity.services.dmarc import (  # noqa: F401
    dmarc_set_stage,
)
from identity.services.mtasts import (  # noqa: F401
    mtasts_set,
)
from identity.services.posture import (  # noqa: F401
    allowed_publish_networks,
    posture_update,
)
from identity.services.publishing import (  # noqa: F401
    dns_publish,
    publish_target,
)
