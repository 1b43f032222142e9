-- Managed by Mailhost (mailhost/backend/inbound.py); local edits are overwritten.
local ucl = require 'ucl'
-- The symbols our settings map inserts (force_actions depends on them).
for _, name in ipairs({'MH_REQUIRE_DKIM', 'MH_REQUIRE_DMARC', 'MH_REQUIRE_SPF', 'MH_SENDER_ALLOWED', 'MH_SENDER_BLOCKED'}) do
  rspamd_config:register_symbol({name = name, type = 'normal', score = 0.0,
    group = 'mailhost', flags = 'nostat,explicit_disable', callback = function() end})
end
rspamd_config:register_symbol({
  name = 'MH_FLOW_RECORD', type = 'idempotent',
  callback = function(task)
    if task:get_user() then return end
    local ip = task:get_from_ip()
    if ip and ip:is_valid() and ip:is_local() then return end
    local action = task:get_metric_action('default')
    local _, pre_action, _, module = task:has_pre_result()
    local domains = {}
    for _, rcpt in ipairs(task:get_recipients('smtp') or {}) do
      if rcpt.domain then domains[string.lower(rcpt.domain)] = true end
    end
    local list = {}
    for d, _ in pairs(domains) do table.insert(list, d) end
    local line = ucl.to_format({
      action = pre_action or action, module = module or '',
      dmarc_reject = task:has_symbol('DMARC_POLICY_REJECT'),
      greylisted = task:has_symbol('GREYLIST'),
      domains = list,
    }, 'json-compact')
    local f = io.open('/srv/mh/node/inbound/flow.jsonl', 'a')
    if f then f:write(line .. '\n'); f:close() end
  end,
})
