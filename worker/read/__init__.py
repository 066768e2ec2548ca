"""The read side: the seed's reads as a library (``queries``), its result models, the
``metrics-worker query`` CLI and the ``metrics-api`` HTTP API."""
