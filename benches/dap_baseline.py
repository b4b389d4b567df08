"""Baseline for the debug kind's step round trip: debugpy's adapter driven directly over its
stdio by a minimal Debug Adapter Protocol client (no stablehand), timing `next` until the
`stopped` event, then each request stablehand makes to describe a stop (stackTrace, scopes,
variables).

Run: .venv/bin/python benches/dap_baseline.py [STEPS]   (prints medians in ms)
"""

from __future__ import annotations

import json
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

PROGRAM = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "spinner.py"


class Client:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "debugpy.adapter"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=PROGRAM.parent,
        )
        self.seq = 0
        self.responses: dict[int, threading.Event] = {}
        self.bodies: dict[int, dict] = {}
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    return
                if not line.strip():
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            msg = json.loads(out.read(length))
            if msg["type"] == "response":
                self.bodies[msg["request_seq"]] = msg.get("body", {})
                self.responses[msg["request_seq"]].set()
            else:
                self.events.put(msg)

    def send(self, command: str, arguments: dict | None = None) -> int:
        self.seq += 1
        self.responses[self.seq] = threading.Event()
        body = json.dumps({"seq": self.seq, "type": "request", "command": command, "arguments": arguments or {}})
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body.encode()))
        self.proc.stdin.flush()
        return self.seq

    def call(self, command: str, arguments: dict | None = None) -> dict:
        seq = self.send(command, arguments)
        assert self.responses[seq].wait(30), command
        return self.bodies[seq]

    def wait_event(self, name: str) -> dict:
        while True:
            msg = self.events.get(timeout=30)
            if msg.get("event") == name:
                return msg


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    c = Client()
    c.call("initialize", {"adapterID": "baseline", "linesStartAt1": True, "columnsStartAt1": True, "pathFormat": "path"})
    c.send("launch", {"program": str(PROGRAM), "cwd": str(PROGRAM.parent), "stopOnEntry": True, "console": "internalConsole"})
    c.wait_event("initialized")
    c.call("configurationDone")
    c.wait_event("stopped")
    times: dict[str, list[float]] = {k: [] for k in ("next until stopped", "stackTrace", "scopes", "variables", "whole step")}
    for _ in range(steps):
        t0 = time.perf_counter()
        c.call("next", {"threadId": 1})
        c.wait_event("stopped")
        t1 = time.perf_counter()
        frame = c.call("stackTrace", {"threadId": 1, "levels": 1})["stackFrames"][0]
        t2 = time.perf_counter()
        scope = c.call("scopes", {"frameId": frame["id"]})["scopes"][0]
        t3 = time.perf_counter()
        c.call("variables", {"variablesReference": scope["variablesReference"]})
        t4 = time.perf_counter()
        for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            value_ms = value * 1000
            times[key].append(value_ms)
    c.proc.kill()
    print("| debugpy request (direct client) | median |\n|---|---|")
    for key, values in times.items():
        print(f"| {key} | {statistics.median(values):.1f} ms |")


if __name__ == "__main__":
    main()
