"""`ia-sub`: print the predictions an `ia-live` process publishes on ZeroMQ.

The reference consumer of `docs/messages.md`: a human line per prediction, or the raw JSON of every
message (`--dump-json`) to pipe into other tools. Heartbeats keep `--timeout` from firing (ia-live is alive);
an `end` message ends `ia-sub` too, so a script never waits for a run that is over. Exit codes: 0 done
(--count predictions received, or the run ended normally), 1 --timeout without a message, 2 bad
arguments, 3 the run ended with an error (its `end` reason is `error` or `source_lost`), 130 interrupted
(Ctrl-C).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence

import zmq

from core.cliflags import CliError, add_alias, make_parser, parse_args
from core.errors import one_line
from realtime.messages import from_json, message_type
from realtime.publish import DEFAULT_ENDPOINT, DEFAULT_TOPIC


EXIT_RUN_FAILED = 3
#: `end` reasons that mean the run failed
FAILED_REASONS = ("error", "source_lost")


def format_end(message: Mapping) -> str:
    """One human line for the end of a run."""
    error = f": {message['error']}" if message.get("error") else ""
    return (f"end of {message['source']} ({message['reason']}{error}): {message['predictions']} predictions, "
            f"{message['frames']} frames, dropped {message['dropped_frames']} frames / "
            f"{message['dropped_windows']} windows")


def format_message(message: Mapping, k: int = 3) -> str:
    """One human line: frame, time, top-k labels, gate, persons, end-to-end latency, drops."""
    labels = " | ".join(f"{e['label']} {e['score']:.2f}" for e in message["topk"][:k])
    gate = message.get("appearance_weight")
    gate_text = "G n/a" if gate is None else f"G {gate:.2f}"
    e2e = message["latency_ms"]["capture_to_publish"]
    return (f"#{message['seq']} {message['source']} frame {message['frame_index']} t={message['timestamp']:.2f}s  "
            f"{message['action']} {message['action_score']:.2f}  [{labels}]  {gate_text}  persons {message['persons']}  e2e {e2e:.0f} ms  "
            f"dropped {message['dropped_frames']}")


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("ia-sub", "Print ia-live predictions received over ZeroMQ.")
    # dests keep their historical names (connect, json, top): run() and callers read them
    parser.add_argument("--zmq", dest="connect", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                        help="ZeroMQ endpoint of ia-live's publisher (ia-live --zmq)")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help="topic to subscribe to")
    parser.add_argument("--dump-json", dest="json", action="store_true",
                        help="print each message's raw JSON line (JSON Lines on stdout)")
    parser.add_argument("--count", type=int, default=0, metavar="N", help="exit after N predictions (default: until the run ends)")
    parser.add_argument("--timeout", type=float, default=0.0, metavar="S",
                        help="exit with status 1 when no message arrives for S seconds (default: wait forever)")
    parser.add_argument("--top-k", dest="top", type=int, default=3, metavar="K", help="labels per human line")
    for old, new in (("--connect", "--zmq"), ("--json", "--dump-json"), ("--top", "--top-k")):
        add_alias(parser, old, new)
    return parser


def _error(text: str, code: int) -> int:
    print(f"ia-sub: error: {text}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    """Receive and print until --count, --timeout or Ctrl-C; returns the exit status."""
    topic = args.topic.encode("utf-8")
    context = zmq.Context()
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        try:
            socket.connect(args.connect)
        except zmq.ZMQError as exc:
            return _error(f"cannot connect to {args.connect!r}: {exc.strerror}", 2)
        socket.setsockopt(zmq.SUBSCRIBE, topic)
        received = 0
        last = time.monotonic()
        while not args.count or received < args.count:
            if not socket.poll(100, zmq.POLLIN):
                if args.timeout and time.monotonic() - last >= args.timeout:
                    return _error(f"no message on {args.connect} topic {args.topic} for {args.timeout:g} s", 1)
                continue
            parts = socket.recv_multipart()
            last = time.monotonic()
            if len(parts) != 2 or parts[0] != topic:   # SUB filters by prefix; keep the exact topic only
                continue
            try:
                message = from_json(parts[1])
            except ValueError as exc:
                if args.json:      # raw mode passes on what it cannot check
                    print(parts[1].decode("utf-8", "replace"), flush=True)
                else:
                    print(f"ia-sub: skipping a bad message: {exc}", file=sys.stderr)
                continue
            kind = message_type(message)
            if args.json:
                print(parts[1].decode("utf-8"), flush=True)
            elif kind == "prediction":
                print(format_message(message, args.top), flush=True)
            elif kind == "end":
                print(format_end(message), flush=True)
            if kind == "prediction":
                received += 1
            elif kind == "end":
                return EXIT_RUN_FAILED if message["reason"] in FAILED_REASONS else 0
        return 0
    finally:
        socket.close(linger=0)
        context.term()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ia-sub`."""
    try:
        args = parse_args(build_parser(), argv)
    except CliError as exc:
        return _error(one_line(exc), exc.code)
    if args.count < 0:
        return _error("--count must be >= 0", 2)
    if args.timeout < 0:
        return _error("--timeout must be >= 0", 2)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:       # `ia-sub | head`: the reader left; not an error worth a traceback
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
