# Managed by Mailhost: edits here are overwritten. Change it in /mailbox/.
redirect "x@elsewhere.test";
stop;
