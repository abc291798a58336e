"""Transform: tenant snapshot -> directory records (mapping, naming, lifecycle)."""
