"""A fake OpenAI-compatible server that tests reach over real HTTP through the real ``openai`` client.

It answers chat completions at ``/v1/chat/completions`` (OpenAI, Ollama) and
``/openai/deployments/<name>/chat/completions`` (Azure) — text, structured output (``response_format``
``json_schema``/``json_object``, forced tool calls), ``logprobs``, ``usage`` with prefix caching — and the
Batch API (``/v1/files``, ``/v1/batches``). It records every request and every answered completion, and can
be told to fail (``fail_next``, ``fail_every``), to refuse structured output (``refuse``), to take its time
(``delay``, ``jitter``) or to hold to a provider's rate limits (``rpm``, ``tpm``). The benchmarks run it in its own
process (``python -m tests.fakes.openai_server``, read through ``control``). One module per concern: ``fake``
(settings and records), ``chat`` (one completion), ``schemas``, ``strict``, ``tokens``, ``limits``, ``batches``,
``handler`` (HTTP), ``vision`` (a model that finds the objects on the picture it is sent).
"""

from tests.fakes.openai_server.chat import Answer, default_reply
from tests.fakes.openai_server.fake import FakeOpenAI
from tests.fakes.openai_server.handler import make_handler
from tests.fakes.openai_server.records import Completion, RecordedRequest
from tests.fakes.server import BackgroundServer

__all__ = ["Answer", "Completion", "FakeOpenAI", "FakeOpenAIServer", "RecordedRequest", "default_reply"]


class FakeOpenAIServer(BackgroundServer):
    """Runs a FakeOpenAI on a free port (or ``port``) of ``host`` (loopback unless told) in a background thread."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.fake = FakeOpenAI()
        super().__init__(make_handler(self.fake), port, host)
