"""The engine owns time: it dispatches READY runs to backends, enforces timeouts and cancels,
and reconciles runs after a restart. Every decision is a transaction on the store."""
