"""Which PostgreSQL server a query goes to: the primary, or a read replica caught up enough."""
