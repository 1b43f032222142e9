# Managed by Mailhost: edits here are overwritten. Change it in /mailbox/.
require ["date", "relational", "vacation"];

if allof (currentdate :value "ge" "date" "2026-07-01", currentdate :value "le" "date" "2026-07-14") {
    vacation :days 1 :subject "Out of office" :from "anna@example.test" :addresses ["anna@example.test"] text:
I am away until Monday.
For urgent matters write to bob@example.test.
.
;
}
