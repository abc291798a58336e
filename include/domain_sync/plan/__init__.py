"""Plan: observe the domain, diff it against the directory records, guard the change set."""
