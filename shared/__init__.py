"""Domain code shared by the API and the workers: configuration, labeling configs, prompts, LLM, Redis."""
