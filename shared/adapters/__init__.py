"""Everything that talks to the outside world, one module per peer.

Redis (``store``: projects and the LLM cache; ``jobs``: job records and the exactly-once ledger;
``ratelimit``; ``metrics``; ``evaluations``; ``redis_connection``: TLS for every connection), the LLM through
the ``openai`` client (``llm``, ``batch_api``), Label Studio through ``label-studio-sdk`` (``label_studio``,
``images``), Celery (``queue``) and DNS (``netguard``).  Adapters depend on ``shared.domain``, never the other
way round; ``shared.services`` wires them once for every entry point.
"""
