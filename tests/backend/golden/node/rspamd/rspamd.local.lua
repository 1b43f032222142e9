-- Managed by Mailhost (mailhost/backend/inbound.py); local edits are overwritten.
-- The symbols our settings map inserts (force_actions depends on them).
for _, name in ipairs({'MH_REQUIRE_DKIM', 'MH_REQUIRE_DMARC', 'MH_REQUIRE_SPF', 'MH_SENDER_ALLOWED', 'MH_SENDER_BLOCKED'}) do
  rspamd_config:register_symbol({name = name, type = 'normal', score = 0.0,
    group = 'mailhost', flags = 'nostat,explicit_disable', callback = function() end})
end
