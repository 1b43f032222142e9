"""The outbound channel's services: one module per sub-domain, re-exported here."""

from delivery.services.compose import Attachment, Draft
from delivery.services.send import Sent, message_send, sending_domain
from delivery.services.suppressions import (
    suppression_add,
    suppression_list,
    suppression_remove,
)

__all__ = ["Attachment", "Draft", "Sent", "message_send", "sending_domain", "suppression_add",
           "suppression_list", "suppression_remove"]
