"""The pure core: what a labeling config asks for, what the model is told, how its answers become regions.

Its parts are subpackages: ``labeling`` (what a config asks), ``prompts`` (what the model is told), ``answers``
(how answers become regions), ``evaluation`` (predictions against the ground truth) and ``estimation`` (what a run
costs); the modules at this level are what they all share (types, errors, config, digests, model versions, routing,
retries, endpoints, checks on untrusted input, Batch API request lines).  Renderings for people live outside the
core, in ``shared.reports``.

Rule of this package: **no I/O**.  Nothing here opens a socket, talks to Redis, Celery, an LLM or
Label Studio, or reads a file, except ``config.Settings`` reading the environment (and the file
``DEFAULT_PROMPT`` may name) when an entry point builds it.  Everything here is a function of its
arguments, so it is tested without servers and reused by the API, the workers and the CLI alike.
``tests/unit/test_layers.py`` keeps the rule: it fails when a module here imports a network,
storage or queue library, anything from ``shared.adapters``, or a report from ``shared.reports``.
"""
