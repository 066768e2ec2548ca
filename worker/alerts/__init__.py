"""Alerts: rules over the metrics and the pipeline, kept as state, told to webhooks.

Rules are read from a file, evaluated against the tables and the pipeline's status view, kept as
state in PostgreSQL, delivered to webhooks.

What it offers: :mod:`rules` (the rules file), :mod:`kinds` (what a rule can watch), :mod:`evaluate`
(the pure state machine), :mod:`measure` (the values), :mod:`relative` (a rule's value over its
baseline), :mod:`store` (state, history and notifications), :mod:`retire` (rules taken out of the
file), :mod:`delivery` (webhooks), :mod:`cycle` (one evaluation of every rule), :mod:`job` (one run
under the lock: the scheduled job's and ``alerts run``'s). The maintenance job and the API both
stand on it, so it sits below the rooms.
"""
