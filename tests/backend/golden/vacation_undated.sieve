# Managed by Mailhost: edits here are overwritten. Change it in /mailbox/.
require ["vacation"];

vacation :days 1 :subject "Away" :from "anna@example.test" :addresses ["anna@example.test"] text:
Away.
.
;
