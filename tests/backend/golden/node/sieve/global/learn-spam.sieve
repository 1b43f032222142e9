# Managed by Mailhost (mailhost/backend/inbound.py); local edits are overwritten.
# IMAPSieve: a message moved into Junk trains Rspamd as spam.
require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];
if environment :matches "imap.mailbox" "*" {
  set "mailbox" "${1}";
}
if string "${mailbox}" "Trash" {
  stop;
}
pipe :copy "rspamd-learn-spam";
