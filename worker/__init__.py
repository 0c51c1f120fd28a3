"""Celery workers: batch jobs are split into chunks, predicted concurrently and pushed into Label Studio."""
