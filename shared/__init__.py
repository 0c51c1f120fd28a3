"""The code the API, the workers and the CLI share, in two layers and the use cases that join them.

- ``shared.domain``: the pure core (settings, labeling specs, prompts, regions, model versions); no I/O.
- ``shared.adapters``: Redis, the LLM, Label Studio, Celery; one module per peer.
- ``shared.predictor``, ``shared.dispatch``: the use cases (predict tasks; start and cancel jobs).
- ``shared.services``: everything wired once; every entry point starts there.
"""
