"""SQL persistence: the single source of truth. One module per aggregate of queries."""
