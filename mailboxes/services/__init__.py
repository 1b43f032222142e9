"""Writes for domains, mailboxes and aliases.

Every service is keyword-only and atomic: it checks the actor's rights, validates every name
before it can reach the mail stack, writes the rows, records an AuditEvent and a node change
(which schedules a reconcile once the transaction commits).

One module per sub-domain; everything public is re-exported here, so callers import from
`mailboxes.services` as before.
"""

from mailboxes.services.aliases import (  # noqa: F401
    alias_create,
    alias_create_or_get,
    alias_delete,
    alias_update,
)
from mailboxes.services.bulk import (  # noqa: F401
    AddressTaken,
    BulkResult,
    BulkRow,
    address_parts,
    mailbox_bulk_create,
)
from mailboxes.services.common import (  # noqa: F401
    MAX_ALIAS_DESTINATIONS,
    MAX_QUOTA_MB,
)
from mailboxes.services.domains import (  # noqa: F401
    domain_create,
    domain_delete,
    domain_mark_verified,
    domain_revoke_verification,
    domain_update,
)
from mailboxes.services.holder import (  # noqa: F401
    MAX_APP_PASSWORDS,
    MAX_FORWARD_ADDRESSES,
    MAX_VACATION_BODY,
    MAX_VACATION_SUBJECT,
    app_password_create,
    app_password_revoke,
    mailbox_change_own_password,
    mailbox_set_forwarding,
    mailbox_set_vacation,
)
from mailboxes.services.imports import (  # noqa: F401
    IMPORT_COLUMNS,
    MAX_IMPORT_BYTES,
    MAX_IMPORT_ROWS,
    mailbox_import_run,
    mailbox_import_start,
    mailbox_import_take_generated,
)
from mailboxes.services.mailboxes import (  # noqa: F401
    mailbox_create,
    mailbox_delete,
    mailbox_recreate,
    mailbox_rename,
    mailbox_restore,
    mailbox_set_password,
    mailbox_set_status,
    mailbox_update,
)
from mailboxes.services.organisations import (  # noqa: F401
    organisation_set_suspended,
)
from mailboxes.services.placement import (  # noqa: F401
    least_loaded_node,
    node_for_new_domain,
)
from mailboxes.services.retention import (  # noqa: F401
    mailbox_purge_expired,
)
from mailboxes.services.usage import (  # noqa: F401
    mailbox_usage_record,
)
