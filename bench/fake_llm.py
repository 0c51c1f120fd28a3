"""A fake OpenAI-compatible server for load, run as its own process (so it never shares a GIL with
what is measured).

``python -m bench.fake_llm --port 8399 --delay 0.5 --jitter 0.1 --rpm 1200``

* ``POST /v1/chat/completions`` (any path ending in ``/chat/completions``): answers after ``delay``
  seconds, uniformly jittered by ``± jitter``; holds as many requests at once as clients open (one
  asyncio coroutine each, no thread per request).
* Optional limits: ``rpm`` requests and ``tpm`` tokens per minute, as token buckets refilled
  continuously and holding ``burst`` seconds' worth; a request over a limit answers 429 at once with
  ``Retry-After`` (whole seconds, at least 1) and ``x-ratelimit-*`` headers, as OpenAI does.
* The answer is ``Not Sarcastic`` when the prompt holds the word ``even``, else ``Sarcastic`` (the
  labels of ``tests/configs/sarcasm.xml``); asked for a ``json_schema`` response format, a JSON object
  filling that schema with it, as a provider's structured outputs do.
* A prompt holding ``[bench:<token>]`` has its server-side time recorded under that token, so a
  client can subtract exactly this request's LLM time from what it measured end to end.

Control (JSON): ``GET /_bench/stats``; ``GET /_bench/in_flight`` (calls being answered now and answered so
far: cheap enough to sample several times a second); ``POST /_bench/config`` with any of ``delay``, ``jitter``,
``rpm``, ``tpm``, ``burst``; ``POST /_bench/reset`` (counters and buckets); ``POST /_bench/timings``
returns and clears the recorded ``{token: seconds}``; ``GET /health``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import re
import signal
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

TOKEN = re.compile(r"\[bench:([A-Za-z0-9_.-]+)\]")
MAX_HEAD = 64 * 1024
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


@dataclass
class Settings:
    delay: float = 0.5
    jitter: float = 0.0
    rpm: float = 0.0  # 0: no limit
    tpm: float = 0.0
    burst: float = 1.0  # seconds' worth of requests (tokens) a full bucket holds


class Bucket:
    """A token bucket refilled at ``per_minute / 60`` per second, holding ``burst`` seconds' worth."""

    def __init__(self, per_minute: float, burst: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst)
        self.level = self.capacity
        self.at = time.monotonic()

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` can be taken (0 when it can be now). A request larger than the
        bucket passes when the bucket is full and leaves it in debt."""
        self._refill(now)
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount

    def remaining(self) -> int:
        return max(0, int(self.level))


@dataclass
class Stats:
    requests: int = 0  # chat requests received
    ok: int = 0
    rate_limited: int = 0
    rejected_rpm: int = 0
    rejected_tpm: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    tokens: int = 0
    first_request_at: float | None = None  # time.time(), comparable across processes on this machine
    ok_times: list[float] = field(default_factory=list)  # time.time() of each 200, in order
    repeated_times: list[float] = field(default_factory=list)  # time.time() of each 200 for a task answered before
    limited_times: list[float] = field(default_factory=list)


class FakeLLM:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = Stats()
        self.timings: dict[str, float] = {}
        self._answered: set[str] = set()  # the last message of every request answered (a task's data)
        self._buckets()

    def _buckets(self) -> None:
        s = self.settings
        self.rpm_bucket = Bucket(s.rpm, s.burst) if s.rpm > 0 else None
        self.tpm_bucket = Bucket(s.tpm, s.burst) if s.tpm > 0 else None

    def configure(self, values: dict[str, Any]) -> dict:
        for key, value in values.items():
            if key not in Settings.__dataclass_fields__:
                raise ValueError(f"unknown setting {key}")
            setattr(self.settings, key, float(value))
        self._buckets()
        return asdict(self.settings)

    def reset(self) -> None:
        self.stats = Stats()
        self.timings.clear()
        self._answered.clear()
        self._buckets()

    def stats_dict(self) -> dict:
        stats = asdict(self.stats)
        stats["settings"] = asdict(self.settings)
        return stats

    def _limit_headers(self, now: float) -> dict[str, str]:
        headers = {}
        if self.rpm_bucket:
            headers["x-ratelimit-limit-requests"] = str(int(self.settings.rpm))
            headers["x-ratelimit-remaining-requests"] = str(self.rpm_bucket.remaining())
        if self.tpm_bucket:
            headers["x-ratelimit-limit-tokens"] = str(int(self.settings.tpm))
            headers["x-ratelimit-remaining-tokens"] = str(self.tpm_bucket.remaining())
        return headers

    async def chat(self, body: dict) -> tuple[int, dict, dict[str, str]]:
        stats = self.stats
        stats.requests += 1
        if stats.first_request_at is None:
            stats.first_request_at = time.time()
        messages = body.get("messages") or []
        text = _last_text(messages)
        n = int(body.get("n") or 1)
        prompt_tokens = max(1, len(json.dumps(messages)) // 4)
        completion_tokens = 3 * n
        tokens = prompt_tokens + completion_tokens
        now = time.monotonic()
        waits = {}
        if self.rpm_bucket:
            waits["requests"] = self.rpm_bucket.wait_for(1, now)
        if self.tpm_bucket:
            waits["tokens"] = self.tpm_bucket.wait_for(tokens, now)
        wait = max(waits.values(), default=0.0)
        if wait > 0:
            stats.rate_limited += 1
            stats.limited_times.append(time.time())
            if waits.get("requests", 0) > 0:
                stats.rejected_rpm += 1
            else:
                stats.rejected_tpm += 1
            which = "requests" if waits.get("requests", 0) > 0 else "tokens"
            headers = {"Retry-After": str(max(1, math.ceil(wait)))} | self._limit_headers(now)
            headers[f"x-ratelimit-reset-{which}"] = f"{wait:.3f}s"
            message = f"Rate limit reached for {which} per minute. Please try again in {wait:.3f}s."
            return 429, {"error": {"message": message, "type": which, "code": "rate_limit_exceeded"}}, headers
        if self.rpm_bucket:
            self.rpm_bucket.take(1)
        if self.tpm_bucket:
            self.tpm_bucket.take(tokens)
        headers = self._limit_headers(now)
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            s = self.settings
            delay = max(0.0, s.delay + (random.uniform(-s.jitter, s.jitter) if s.jitter else 0.0))
            if delay:
                await asyncio.sleep(delay)
        finally:
            stats.in_flight -= 1
        stats.ok += 1
        stats.tokens += tokens
        stats.ok_times.append(time.time())
        if text in self._answered:
            stats.repeated_times.append(time.time())
        self._answered.add(text)
        answer = "Not Sarcastic" if re.search(r"\beven\b", text) else "Sarcastic"
        content = _in_format(answer, body.get("response_format"))
        choices = [
            {"index": i, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            for i in range(n)
        ]
        payload = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": tokens},
        }
        return 200, payload, headers

    async def dispatch(self, method: str, path: str, body: bytes) -> tuple[int, Any, dict[str, str], str | None]:
        """(status, payload, headers, bench token)."""
        path = path.split("?", 1)[0]
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return 400, {"error": {"message": "invalid JSON"}}, {}, None
        if method == "POST" and path.endswith("/chat/completions"):
            # The token rides in the prompt, which the backend puts in the system message (the task's data last).
            match = TOKEN.search(" ".join(_text(message) for message in data.get("messages") or []))
            status, payload, headers = await self.chat(data)
            return status, payload, headers, match.group(1) if match and status == 200 else None
        if path == "/health":
            return 200, {"status": "UP"}, {}, None
        if path == "/_bench/stats":
            return 200, self.stats_dict(), {}, None
        if path == "/_bench/in_flight":
            return 200, {"in_flight": self.stats.in_flight, "ok": self.stats.ok}, {}, None
        if method == "POST" and path == "/_bench/config":
            try:
                return 200, self.configure(data), {}, None
            except (ValueError, TypeError) as exc:
                return 400, {"error": {"message": str(exc)}}, {}, None
        if method == "POST" and path == "/_bench/reset":
            self.reset()
            return 200, {"status": "reset"}, {}, None
        if method == "POST" and path == "/_bench/timings":
            timings, self.timings = self.timings, {}
            return 200, timings, {}, None
        return 404, {"error": {"message": f"no route {method} {path}"}}, {}, None


def _in_format(answer: str, response_format: object) -> str:
    """The answer as the request asks for it: a JSON object filling its ``json_schema`` (as OpenAI's structured
    outputs do), else the bare label."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return answer
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    return json.dumps(_fill(schema, answer))


def _fill(schema: dict, answer: str) -> Any:
    """A value of ``schema`` that says ``answer``: the label where an enum offers it, the text where text goes."""
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        return _fill(options[0], answer) if options else None
    if "enum" in schema:
        return answer if answer in schema["enum"] else schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: _fill(field, answer) for name, field in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_fill(schema.get("items") or {}, answer)]
    if kind in ("number", "integer"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    return answer


def _text(message: object) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _last_text(messages: list) -> str:
    return _text(messages[-1]) if messages else ""


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return bytes(body)
            body.extend(await reader.readexactly(size))
            await reader.readline()
    length = int(headers.get("content-length") or 0)
    return await reader.readexactly(length) if length else b""


def make_handler(fake: FakeLLM):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, version = (lines[0].split(" ", 2) + ["", ""])[:3]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await _read_body(reader, headers)
                started = time.perf_counter()
                status, payload, extra, token = await fake.dispatch(method, path, body)
                data = json.dumps(payload).encode()
                keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                out = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", "Content-Type: application/json"]
                out.append(f"Content-Length: {len(data)}")
                out.extend(f"{name}: {value}" for name, value in extra.items())
                out.append("Connection: keep-alive" if keep_alive else "Connection: close")
                if token is not None:  # taken before the answer leaves: its client may finish before we run again
                    fake.timings[token] = time.perf_counter() - started
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + data)
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    return handle


async def serve(host: str, port: int, settings: Settings) -> None:
    fake = FakeLLM(settings)
    server = await asyncio.start_server(make_handler(fake), host, port, backlog=4096, limit=MAX_HEAD)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()
    print(f"fake LLM listening on http://{bound[0]}:{bound[1]}", flush=True)
    async with server:
        await stop.wait()


class FakeLLMControl:
    """The benchmark's side: reconfigure the fake between scenarios and read its counters."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, payload: dict | None = None, timeout: float = 10) -> Any:
        data = json.dumps(payload).encode() if payload is not None else (b"{}" if method == "POST" else None)
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def healthy(self) -> bool:
        try:
            return self._call("GET", "/health", timeout=1).get("status") == "UP"
        except OSError:
            return False

    def configure(self, **values: float) -> dict:
        return self._call("POST", "/_bench/config", values)

    def reset(self) -> None:
        self._call("POST", "/_bench/reset")

    def stats(self) -> dict:
        return self._call("GET", "/_bench/stats", timeout=30)

    def in_flight(self) -> dict:
        return self._call("GET", "/_bench/in_flight")

    def timings(self) -> dict[str, float]:
        return self._call("POST", "/_bench/timings", timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    settings = Settings(delay=args.delay, jitter=args.jitter, rpm=args.rpm, tpm=args.tpm, burst=args.burst)
    asyncio.run(serve(args.host, args.port, settings))


if __name__ == "__main__":
    main()
