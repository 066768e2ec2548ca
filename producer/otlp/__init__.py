"""OpenTelemetry in: ``metrics-otlp`` serves OTLP/HTTP ``POST /v1/traces`` and turns GenAI spans
into the contract's events, published onto the same Redis streams through the producer's delivery
code (producer/delivery.py).

- ``spans.py``: the receiver's own view of one span (:class:`Span`), what the decoders of both
  content types (protobuf and OTLP/JSON) produce and what the mapping reads;
- ``mapping.py``: spans -> contract events (rejections naming the span and the field), with
  ``tree.py``, ``sessions.py``, ``tools.py``, ``forwards.py``, ``ids.py`` (deterministic event
  ids) and ``build.py`` beside it;
- ``server.py``: the HTTP protocol, access, backpressure and the console script.

Importing ``producer`` does not import this package (an agent needs none of it).
"""
