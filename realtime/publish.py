"""Where predictions go: a ZeroMQ PUB socket and a JSON Lines file (or stdout). (The annotated video is
the video writer stage's, `realtime.stages.video`.)

Design goals, in order: never block the pipeline (a slow or absent subscriber costs dropped messages,
counted, never latency); every sink sees the same bytes (one serialisation per message); nothing queued
is lost at a clean shutdown (the JSON Lines line is flushed before the ZeroMQ send, and `close()` lingers
briefly so queued ZeroMQ messages reach connected subscribers).
"""
from __future__ import annotations

import ipaddress
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

import zmq

from core.errors import UserError
from realtime import defaults
from realtime.messages import stamp_publish, to_json, validate_message

DEFAULT_ENDPOINT = defaults.ZMQ_ENDPOINT
DEFAULT_TOPIC = defaults.TOPIC
#: Messages queued per subscriber before new ones are dropped (ZeroMQ SNDHWM). Predictions are only useful
#: fresh: a subscriber that is 64 predictions behind (several seconds) gains nothing from an older backlog.
DEFAULT_SNDHWM = 64
#: How long close() waits for queued messages to reach connected subscribers. 0 would lose the last
#: predictions of a video at shutdown; a dead subscriber must not hold the process for long either.
DEFAULT_CLOSE_LINGER_MS = 500


class PublishError(UserError, RuntimeError):
    """A sink could not be opened or written; the message is one line for the user."""


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str, allow_remote: bool = False) -> str:
    """Validate a bind endpoint; raise PublishError with a one-line reason.

    Only tcp://HOST:PORT, ipc:// and inproc:// are accepted. A tcp bind to anything but a loopback address
    exposes predictions to the network, so it needs allow_remote=True (the CLI passes it when the user
    typed the endpoint explicitly).
    """
    if not isinstance(endpoint, str) or "://" not in endpoint:
        raise PublishError(f"invalid ZeroMQ endpoint {endpoint!r}: expected e.g. {DEFAULT_ENDPOINT}")
    transport, _, address = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        if not address:
            raise PublishError(f"invalid ZeroMQ endpoint {endpoint!r}: empty {transport} address")
        return endpoint
    if transport != "tcp":
        raise PublishError(f"invalid ZeroMQ endpoint {endpoint!r}: transport must be tcp, ipc or inproc")
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise PublishError(f"invalid ZeroMQ endpoint {endpoint!r}: expected tcp://HOST:PORT")
    if port != "*" and not (port.isdigit() and 0 <= int(port) <= 65535):
        raise PublishError(f"invalid ZeroMQ endpoint {endpoint!r}: port must be 0-65535 or *")
    if not allow_remote and not _is_loopback_host(host):
        raise PublishError(f"refusing to bind ZeroMQ to non-loopback {endpoint!r}: "
                           f"use {DEFAULT_ENDPOINT} or pass the endpoint explicitly to allow network access")
    return endpoint


class ZmqSink:
    """Non-blocking PUB side: one multipart [topic, json] per message, drops counted.

    The socket is an XPUB (a PUB that also sees its subscribers' subscriptions; SUB sockets cannot tell
    the difference). That buys two things a plain PUB cannot give: XPUB_NODROP makes a full queue raise
    zmq.Again on send, so drops are *counted* instead of silently vanishing, and `wait_for_subscriber`
    lets a caller (tests, `--wait-subscribers`) hold the first message until N subscribers listen, the usual
    PUB/SUB slow-joiner problem. Trade-off of NODROP: while any one subscriber's queue is full, the
    message is dropped for every subscriber (the alternative is unbounded lag or uncounted loss).
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, topic: str = DEFAULT_TOPIC, *, allow_remote: bool = False,
                 sndhwm: int = DEFAULT_SNDHWM, close_linger_ms: int = DEFAULT_CLOSE_LINGER_MS) -> None:
        check_endpoint(endpoint, allow_remote)
        if not topic or not isinstance(topic, str):
            raise PublishError("ZeroMQ topic must be a non-empty string")
        self.topic = topic.encode("utf-8")
        self.close_linger_ms = int(close_linger_ms)
        self.sent = 0
        self.dropped = 0
        self.subscribers = 0
        self._context = zmq.Context()   # private: closing it never disturbs other sockets in the process
        self._socket = self._context.socket(zmq.XPUB)
        self._socket.setsockopt(zmq.SNDHWM, int(sndhwm))
        self._socket.setsockopt(zmq.XPUB_NODROP, 1)
        self._socket.setsockopt(zmq.XPUB_VERBOSER, 1)   # every (un)subscription: count subscribers
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close(linger=0)
            self._context.term()
            if exc.errno == zmq.EADDRINUSE:
                raise PublishError(f"ZeroMQ endpoint {endpoint} is already in use "
                                   f"(another ia-live running?); choose another with --zmq") from None
            raise PublishError(f"cannot bind ZeroMQ endpoint {endpoint!r}: {exc.strerror}") from None
        # The address actually bound (resolves tcp://127.0.0.1:* / :0 to the real port).
        self.endpoint = self._socket.getsockopt(zmq.LAST_ENDPOINT).decode("utf-8")

    def _matches(self, subscription: bytes) -> bool:
        prefix = subscription[1:]
        return self.topic.startswith(prefix)

    def _drain_subscriptions(self, timeout_ms: int = 0) -> None:
        """Read pending (un)subscribe notifications so they never pile up; count the matching ones.

        XPUB_VERBOSER passes every subscriber's subscribe and unsubscribe up (a plain XPUB reports a topic
        once, however many subscribers share it), and ZeroMQ unsubscribes a subscriber that disconnects,
        so `subscribers` is the number of subscribers listening to our topic now.
        """
        while self._socket.poll(timeout_ms, zmq.POLLIN):
            timeout_ms = 0
            event = self._socket.recv()
            if event[:1] in (b"\x00", b"\x01") and self._matches(event):
                self.subscribers = max(0, self.subscribers + (1 if event[:1] == b"\x01" else -1))

    def wait_for_subscriber(self, timeout_s: float, count: int = 1,
                            check: Callable[[], None] | None = None) -> bool:
        """Block up to timeout_s until `count` subscribers for our topic are subscribed; True if they are.

        `check` is called between polls (the pipeline's stop check, which raises to abandon the wait).
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        self._drain_subscriptions()
        while self.subscribers < count:
            if check is not None:
                check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._drain_subscriptions(timeout_ms=max(1, int(min(remaining, 0.05) * 1000)))
        return True

    def send(self, payload: bytes) -> bool:
        """Queue [topic, payload] without blocking; False (and counted) when a subscriber queue is full."""
        self._drain_subscriptions()
        try:
            self._socket.send_multipart([self.topic, payload], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        """Let queued messages go out for up to close_linger_ms, then release the socket and port."""
        if self._socket.closed:
            return
        self._socket.close(linger=self.close_linger_ms)
        self._context.term()


class JsonlSink:
    """One message per line, each line one write, so a `tail -f`, a crash or a full disk never leaves half
    a message: a file that cannot take a whole line is cut back to its last complete line, and the error
    names the output (`label`, the flag the user typed, and the path)."""

    def __init__(self, target: str, label: str = "--dump-json") -> None:
        self.target = target
        self.label = label
        self._owns = target != "-"
        self._fd: int | None = None
        self._size = 0          # bytes of complete lines in the file
        if self._owns:
            path = Path(target)
            if path.parent and not path.parent.exists():
                raise PublishError(f"{label} {target}: directory {path.parent} does not exist")
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            except OSError as exc:
                raise PublishError(f"{label} {target}: {exc.strerror}") from None

    def write(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        if self._fd is None:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                raise PublishError("JSON Lines consumer closed the pipe") from None
            except OSError as exc:
                raise PublishError(f"{self.label} {self.target}: {exc.strerror}") from None
            return
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self._cut_back()
            raise PublishError(f"{self.label} {self.target}: {exc.strerror or exc}") from None
        self._size += len(data)

    def _cut_back(self) -> None:
        """Drop the partial line a failed write left (ENOSPC, EFBIG, EDQUOT); best effort: a device such as
        /dev/full cannot be truncated and has nothing to cut."""
        try:
            os.ftruncate(self._fd, self._size)
            os.lseek(self._fd, self._size, os.SEEK_SET)
        except OSError:
            pass

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


@dataclass
class PublisherStats:
    """Counters for the console and the pipeline's shutdown summary."""
    published: int = 0
    zmq_sent: int = 0
    zmq_dropped: int = 0
    publish_ms: list[float] = field(default_factory=list)


class Publisher:
    """Fan each message out to the configured sinks; the only object the publisher process needs.

    Predictions go everywhere, heartbeats to ZeroMQ only, the end message to ZeroMQ and JSON Lines (`publish`).

    Order per message: fill publish-time latencies, validate, serialise once, write + flush the JSON Lines
    line, send on ZeroMQ (non-blocking). A message that fails validation raises ValueError: a producer
    bug, not something to publish.
    """

    def __init__(self, zmq_endpoint: str | None = DEFAULT_ENDPOINT, topic: str = DEFAULT_TOPIC,
                 jsonl: str | None = None, *, allow_remote: bool = False, sndhwm: int = DEFAULT_SNDHWM,
                 close_linger_ms: int = DEFAULT_CLOSE_LINGER_MS) -> None:
        self.stats = PublisherStats()
        self.zmq: ZmqSink | None = None
        self.jsonl: JsonlSink | None = None
        self.jsonl_failed = False   # after a failed write the file gets nothing more (not even the end)
        try:
            if jsonl:
                self.jsonl = JsonlSink(jsonl)
            if zmq_endpoint:
                self.zmq = ZmqSink(zmq_endpoint, topic, allow_remote=allow_remote, sndhwm=sndhwm,
                                   close_linger_ms=close_linger_ms)
        except BaseException:
            self.close()
            raise

    @property
    def endpoint(self) -> str | None:
        """The bound ZeroMQ endpoint with the real port, or None without ZeroMQ."""
        return self.zmq.endpoint if self.zmq else None

    def wait_for_subscriber(self, timeout_s: float, count: int = 1,
                            check: Callable[[], None] | None = None) -> bool:
        """See `ZmqSink.wait_for_subscriber`; True immediately when ZeroMQ is off."""
        return self.zmq.wait_for_subscriber(timeout_s, count, check) if self.zmq else True

    @property
    def subscribers(self) -> int:
        """Subscribers to our topic right now (0 without ZeroMQ)."""
        if self.zmq is None:
            return 0
        self.zmq._drain_subscriptions()  # noqa: SLF001 - the sink's own bookkeeping
        return self.zmq.subscribers

    def publish(self, message: dict) -> str:
        """Publish one message of any type; returns the JSON line sent.

        A prediction is filled in place with its publish latencies and goes to every sink. A heartbeat goes
        to ZeroMQ only: it says "alive" to a listener, and JSON Lines files stay the same for the same input.
        An end message goes to ZeroMQ and to the JSON Lines file (its last line, so a reader can tell a
        finished run from a cut-off one), unless the file itself has failed.
        """
        start = time.perf_counter()
        kind = message.get("type")
        if kind == "prediction":
            stamp_publish(message)
        validate_message(message)
        line = to_json(message)
        if self.jsonl is not None and kind != "heartbeat" and not self.jsonl_failed:
            try:
                self.jsonl.write(line)
            except PublishError:
                self.jsonl_failed = True
                raise
        if self.zmq is not None:
            if self.zmq.send(line.encode("utf-8")):
                self.stats.zmq_sent += 1
            else:
                self.stats.zmq_dropped += 1
        if kind != "prediction":
            return line
        self.stats.published += 1
        self.stats.publish_ms.append((time.perf_counter() - start) * 1000.0)
        if len(self.stats.publish_ms) > 1000:
            del self.stats.publish_ms[:500]
        return line

    def close(self) -> None:
        """Close every sink; ZeroMQ lingers up to close_linger_ms for queued messages."""
        for sink in (self.jsonl, self.zmq):
            if sink is not None:
                sink.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
