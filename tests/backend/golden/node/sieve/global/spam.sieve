# Managed by Mailhost (mailhost/backend/inbound.py); local edits are overwritten.
# Runs before any other script (sieve_before). Rspamd's "add header" action
# (spam score, DMARC quarantine) goes to Junk and nothing else runs for it; everything
# else falls through to the portal's and the user's scripts.
require ["fileinto", "mailbox"];
if header :is "X-Spam" "Yes" {
  fileinto :create "Junk";
  stop;
}
