"""Celery workers for batch predictions (filled by the batch issue)."""
