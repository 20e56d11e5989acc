"""The scheduler: polls due feeds and enqueues one RQ job per new entry.

``policy`` decides when to poll (pure), ``service`` runs a tick against HTTP,
Redis and RQ, ``__main__`` is ``python -m scheduler``.
"""
