"""The web dashboard: static files served by the daemon at ``/`` and ``/ui/``."""
