# Managed by Mailhost: edits here are overwritten. Change it in /mailbox/.
require ["vacation"];

vacation :days 1 :subject "Away \"now\" \\ back; redirect \"evil@x.test\";" :from "anna@example.test" :addresses ["anna@example.test"] text:
..
...
..leading dot
"quoted" \ back\slash
..
stop;
.
;
