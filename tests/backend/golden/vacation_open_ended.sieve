# Managed by Mailhost: edits here are overwritten. Change it in /mailbox/.
require ["date", "relational", "vacation"];

if currentdate :value "ge" "date" "2026-07-01" {
    vacation :days 1 :from "anna@example.test" :addresses ["anna@example.test"] text:
Away.
.
;
}
