"""Processes of a benchmark run and what the runner reads from them.

Every child is started in its own process group and registered with one
`Children` registry, which stops them all (SIGTERM, then SIGKILL) when the run
ends, fails or is interrupted. Server-side figures come from /proc (RSS, CPU
time, open file descriptors) and from each replica's Prometheus /metrics.

Not thread-safe: one runner thread starts and stops everything; only the
stdout readers of children run on their own threads.
"""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_STARTED = time.monotonic()


def log(message):
    """Progress on stderr, with the seconds since the run started."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr,
          flush=True)


class BenchError(Exception):
    """A broken run: a process crashed, hung or printed something unexpected."""


class ReplicaConfigRejected(BenchError):
    """The replica refused its resolver table (e.g. a field it does not know)."""


def tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class Child:
    """One process in its own process group; stdout lines readable with timeouts."""

    def __init__(self, name, argv, log_path, capture_stdout):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self._lines = queue.Queue()
        self.stdout_lines = []
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else self._log,
            stderr=self._log,
            start_new_session=True,
        )
        self.pid = self.popen.pid
        if capture_stdout:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    def _read(self):
        for raw in self.popen.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def alive(self):
        return self.popen.poll() is None

    def next_line(self, timeout):
        """The next stdout line, None at EOF; raises queue.Empty on timeout."""
        return self._lines.get(timeout=max(timeout, 0))

    def wait_for_line(self, prefix, timeout):
        """Skips lines until one starts with prefix; raises BenchError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.next_line(deadline - time.monotonic())
            except queue.Empty:
                raise BenchError(
                    f"{self.name}: no '{prefix}' line within {timeout:.0f}s\n"
                    f"{tail(self.log_path)}") from None
            if line is None:
                self.popen.wait()
                raise BenchError(
                    f"{self.name} exited ({self.popen.returncode}) before "
                    f"'{prefix}'\n{tail(self.log_path)}")
            if line.startswith(prefix):
                return line

    def send_signal(self, sig):
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace=5.0, sig=signal.SIGTERM, wait_first=0.0):
        """Waits wait_first for a natural exit, then SIGTERMs the group and
        SIGKILLs it after grace; returns the exit code."""
        if wait_first > 0:
            try:
                self.popen.wait(timeout=wait_first)
            except subprocess.TimeoutExpired:
                pass
        if self.alive():
            self.send_signal(sig)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.popen.wait()
        else:
            # The leader is gone; anything it left in its group goes too.
            self.send_signal(signal.SIGKILL)
        self._log.close()
        return self.popen.returncode


class Children:
    """Registry of every started child; stop_all() is safe to call repeatedly."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self._children = []
        self._count = 0

    def start(self, name, argv, capture_stdout=False):
        self._count += 1
        log = os.path.join(self.log_dir, f"{self._count:03d}-{name}.log")
        with open(log, "ab") as f:
            f.write(("$ " + " ".join(argv) + "\n").encode())
        child = Child(name, argv, log, capture_stdout)
        self._children.append(child)
        return child

    def stop(self, child, grace=5.0, wait_first=0.0):
        """Stops child if this registry still holds it; returns its exit code."""
        if child not in self._children:
            return child.popen.returncode
        self._children.remove(child)
        return child.stop(grace, wait_first=wait_first)

    def stop_many(self, children, grace=5.0):
        """Signals them all at once, then waits for each (they exit in
        parallel)."""
        mine = [c for c in children if c in self._children]
        for c in mine:
            if c.alive():
                c.send_signal(signal.SIGTERM)
        for c in mine:
            self.stop(c, grace=grace)

    def stop_all(self):
        self.stop_many(list(reversed(self._children)), grace=3.0)
        self._children.clear()


class PortPicker:
    """Free loopback ports, found by binding port 0, never handed out twice."""

    def __init__(self):
        self._given = set()

    def pick(self, n=1):
        held, ports = [], []
        try:
            while len(ports) < n:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", 0))
                held.append(s)
                port = s.getsockname()[1]
                if port not in self._given:
                    self._given.add(port)
                    ports.append(port)
        finally:
            for s in held:
                s.close()
        return ports


def wait_listening(port, timeout, child=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise BenchError(f"{child.name} exited ({child.popen.returncode})\n"
                             f"{tail(child.log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise BenchError(f"nothing listens on port {port} after {timeout}s")


# /proc figures of one process.

def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        # The command name may contain spaces: fields start after ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def context_switches(pid):
    """Voluntary + involuntary context switches of every live thread of
    `pid` (threads that exited are not counted)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches",
                                        "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class ForeignCpu:
    """CPU time used on this machine by processes bench/run did not start:
    all busy time (/proc/stat) minus this process and its waited-for
    children (os.times). In cores, averaged since construction."""

    def __init__(self):
        self._start = self._now()

    @staticmethod
    def _now():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        busy = (sum(fields[:3]) + sum(fields[5:8])) / CLOCK_TICKS
        t = os.times()
        ours = t.user + t.system + t.children_user + t.children_system
        return time.monotonic(), busy, ours

    def cores(self):
        t0, busy0, ours0 = self._start
        t1, busy1, ours1 = self._now()
        if t1 - t0 <= 0:
            return 0.0
        return max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / (t1 - t0))


def scrape_metrics(port, timeout=5.0):
    """Prometheus text -> {name: sum over label sets}; histogram series skipped."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=timeout) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line.startswith("entitysync_"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        if name.endswith(("_bucket", "_sum", "_count")):
            continue
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            pass
    return out
