"""The worker: RQ jobs that fetch, clean, fingerprint and commit articles.

``jobs`` holds the job entry point, ``runtime`` the per-process state it
reuses (HTTP client, Redis pool), ``__main__`` is ``python -m worker``.
"""
