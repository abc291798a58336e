"""Apply: write a planned change set into the domain, idempotently, counting every write."""
