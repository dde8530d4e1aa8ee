"""The web UI: static files (``static/``: index.html, ES modules, CSS; no build step) that talk
to the public ``/api/v1`` routes only, and ``serve``, the router that hands them out."""
