"""What a labeling config asks of the LLM: the config read through the SDK, and the answer's JSON schema in
OpenAI's strict subset."""
