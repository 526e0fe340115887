"""`python -m omniembed.serve` as a child process, for the demo and the benchmarks: started on a free localhost
port, found by the 'listening on' line it prints, stopped with SIGTERM (drain, snapshot, exit 0)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

from omniembed.errors import OmniEmbedError

START_TIMEOUT_S = 180.0


class ServerProcess:
    def __init__(self, args: list[str], log_path: str | os.PathLike | None = None,
                 start_timeout_s: float = START_TIMEOUT_S):
        """args: the serve command's options (--bundle, --index, ...); the port and host are set here.
        log_path: where the server's output goes (default: discarded after start)."""
        self.log = open(log_path, "w") if log_path is not None else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "omniembed.serve", *args, "--port", "0", "--host", "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=self.log if self.log else subprocess.DEVNULL, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + start_timeout_s
        where = f" (log: {log_path})" if log_path else ""
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise OmniEmbedError(f"server did not start within {start_timeout_s:.0f}s{where}") from None
            if line is None:
                raise OmniEmbedError(f"server exited with {self.proc.wait()} before listening{where}")
            if "listening on" in line:
                port = line.split("listening on", 1)[1].split()[0].rsplit(":", 1)[1]
                self.target = f"127.0.0.1:{port}"
                return

    def _pump(self, lines: queue.Queue) -> None:
        # keep reading, so a chatty server never blocks on a full pipe
        for line in self.proc.stdout:
            if self.log:
                self.log.write(line)
                self.log.flush()
            lines.put(line)
        lines.put(None)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM: the server drains in-flight calls, snapshots the index and exits 0; killed past `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.log:
            self.log.close()
        return code

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
