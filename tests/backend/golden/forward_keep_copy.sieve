# Managed by Mailhost: edits here are overwritten. Change it in /mailbox/.
require ["copy"];

redirect :copy "x@elsewhere.test";
redirect :copy "y@elsewhere.test";
