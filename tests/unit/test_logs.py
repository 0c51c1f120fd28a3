import io
import json
import logging

from shared.logs import JsonFormatter, _ContextFilter, log_context


def test_json_lines_carry_the_job_and_task_in_context():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with log_context(job_id="j1", chunk=3):
            with log_context(task_id=42):
                logger.info("predicted %s", "x")
            logger.warning("outside the task")
        logger.info("no context")
    finally:
        logger.removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "predicted x" and first["level"] == "INFO" and first["logger"] == "test.json"
    assert (first["job_id"], first["chunk"], first["task_id"]) == ("j1", 3, 42)
    assert second["job_id"] == "j1" and "task_id" not in second
    assert "job_id" not in third
