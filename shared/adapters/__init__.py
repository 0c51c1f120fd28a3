"""Everything that talks to the outside world, one module per peer.

Redis (``store``: projects and the LLM cache; ``jobs``: job records; ``ledger``: the exactly-once protocol, where its
invariant is stated; ``ratelimit``; ``metrics``; ``evaluations`` and ``improvements``, on ``kept_runs``;
``redis_connection``: TLS for every connection; ``replies``: its replies typed), the LLM through the ``openai``
client (``llm``, ``batch_api``, ``embeddings``), Label Studio through ``label-studio-sdk`` (``label_studio``,
``images``), Celery (``queue``) and DNS (``netguard``); ``deadline`` bounds all of a request's network calls.
Adapters depend on ``shared.domain``, never the other way round; ``shared.services`` wires them once for every
entry point.
"""
