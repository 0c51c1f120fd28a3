"""The pure core: what a labeling config asks for, what the model is told, how its answers become regions.

Rule of this package: **no I/O**.  Nothing here opens a socket, talks to Redis, Celery, an LLM or
Label Studio, or reads a file, except ``config.Settings`` reading the environment (and the file
``DEFAULT_PROMPT`` may name) when an entry point builds it.  Everything here is a function of its
arguments, so it is tested without servers and reused by the API, the workers and the CLI alike.
``tests/unit/test_layers.py`` keeps the rule: it fails when a module here imports a network,
storage or queue library, or anything from ``shared.adapters``.
"""
