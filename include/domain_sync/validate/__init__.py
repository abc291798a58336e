"""Validate: Great Expectations suites gate what may be loaded; bad rows go to quarantine."""
