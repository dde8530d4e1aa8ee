"""herder: a self-hosted job orchestrator."""

__version__ = "0.1.0"
