"""The REST API: a thin edge that validates, calls the engine or the store, and shapes answers."""
