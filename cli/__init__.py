"""The ``llm-backend`` command: one entry point for every process the stack runs."""
