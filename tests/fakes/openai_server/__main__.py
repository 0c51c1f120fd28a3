"""The fake OpenAI server in its own process, for the benchmarks: it never shares a GIL with what they measure.

``python -m tests.fakes.openai_server --port 8399 --delay 0.5 --jitter 0.1 --rpm 1200``

Every chat call is answered with a label of ``tests/configs/sarcasm.xml`` (``Not Sarcastic`` when the last message
holds the word ``even``, else ``Sarcastic``) in whatever form the request asks for, after ``delay`` ± ``jitter``
seconds, within the ``rpm``/``tpm`` limits.  It keeps counters, not records, and is read and reconfigured over
HTTP (``/_fake/…``, through ``control.FakeOpenAIControl``).
"""

from __future__ import annotations

import argparse
import re
import signal
import threading

from tests.fakes.openai_server import Answer, FakeOpenAIServer

_EVEN = re.compile(r"\beven\b")


def sarcasm(messages: list[dict], index: int) -> Answer:
    """The label the benchmarks' tasks ask for: their text says ``even`` on even ids (``bench.harness.task_text``)."""
    said = str(messages[-1].get("content")) if messages else ""
    return Answer("Not Sarcastic" if _EVEN.search(said) else "Sarcastic", fill=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.openai_server", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8399)
    parser.add_argument("--delay", type=float, default=0.5, help="seconds per call (default 0.5)")
    parser.add_argument("--jitter", type=float, default=0.0, help="± seconds, uniform (default 0)")
    parser.add_argument("--rpm", type=float, default=0.0, help="requests per minute, 0 for no limit")
    parser.add_argument("--tpm", type=float, default=0.0, help="tokens per minute, 0 for no limit")
    parser.add_argument("--burst", type=float, default=1.0, help="seconds' worth a full bucket holds (default 1)")
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        parser.error("the fake only listens on loopback addresses")
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    with FakeOpenAIServer(args.port, args.host) as server:
        server.fake.reply, server.fake.keep_records = sarcasm, False
        server.fake.configure(delay=args.delay, jitter=args.jitter, rpm=args.rpm, tpm=args.tpm, burst=args.burst)
        print(f"fake OpenAI server listening on {server.url}", flush=True)
        while not stopped.wait(1.0):
            pass


if __name__ == "__main__":
    main()
