"""The apply engine: validated events into one PostgreSQL transaction (merge, SQL, arrays). No Redis."""
