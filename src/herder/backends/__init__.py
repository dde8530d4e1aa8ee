"""Where runs execute. One module per backend; all share the Protocol in ``base``."""
