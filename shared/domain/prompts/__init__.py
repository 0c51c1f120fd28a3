"""What the model is told: the chat messages for a task, the labels and few-shot examples chosen for it, long
texts asked in parts, and the pure part of prompt refinement."""
