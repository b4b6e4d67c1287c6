"""`import_events` and `seed_demo`."""
