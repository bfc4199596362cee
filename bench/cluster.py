"""One benchmark set-up: nats-server, replicas, the load generator.

`Bench` owns the binaries' paths, the children registry, the port picker and
one nats-server shared by the whole run (every replica set gets its own
subject prefix, so sets never hear each other). `Bench.load_run` is one
measurement: start the loadgen (its resolver first), write the resolver
table, start the replicas, wait for READY, sample the replicas while the
loadgen notifies, read its RESULT, stop everything it started.
"""

import json
import os
import queue
import signal
import time

import processes
from processes import BenchError, ReplicaConfigRejected

NATS_SERVER_CANDIDATES = ("/usr/sbin/nats-server", "/usr/bin/nats-server")


def find_nats_server():
    for path in NATS_SERVER_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    for d in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(d, "nats-server")
        if d and os.access(path, os.X_OK):
            return path
    raise BenchError("nats-server not found (Debian package nats-server; "
                     "scripts/setup installs it)")


def duration_flag(seconds):
    return f"{max(int(round(seconds * 1000)), 0)}ms"


class Replica:
    def __init__(self, child, public_port, internal_port, metrics_port):
        self.child = child
        self.public_port = public_port
        self.internal_port = internal_port
        self.metrics_port = metrics_port
        # The hosted gateway's port (browsers' WebSockets), when it has one.
        self.gateway_port = None

    def client_port(self, transport):
        return self.gateway_port if transport == "websocket" else self.public_port

    @property
    def pid(self):
        return self.child.pid

    def sample(self, metrics=False):
        """RSS, CPU seconds and open fds now (and counters from /metrics)."""
        if not self.child.alive():
            raise BenchError(f"{self.child.name} died "
                             f"({self.child.popen.returncode})\n"
                             f"{processes.tail(self.child.log_path)}")
        s = {
            "t": time.monotonic(),
            "rss": processes.rss_bytes(self.pid),
            "cpu": processes.cpu_seconds(self.pid),
            "fds": processes.fd_count(self.pid),
            "context_switches": processes.context_switches(self.pid),
        }
        if metrics:
            s["metrics"] = processes.scrape_metrics(self.metrics_port)
        return s


def metrics_delta(before, after):
    names = set(before) | set(after)
    return {n: after.get(n, 0.0) - before.get(n, 0.0) for n in sorted(names)}


class Bench:
    def __init__(self, bin_dir, log_dir, children, ports):
        self.bin_dir = bin_dir
        self.log_dir = log_dir
        self.children = children
        self.ports = ports
        self.nats_url = None
        # The loadgen's wait for late deliveries after notifying (--drain).
        self.drain = 1.0
        self._sets = 0
        # Extra flags for every replica started (bench/ab sets them per arm).
        self.server_args = []
        self.loadgen_bin = self._binary("bench/loadgen")
        self.server_bin = self._binary("server/entitysync-server")
        self.stream_limit_bin = self._binary("bench/grpc_stream_limit")
        self.idle_streams_bin = self._binary("bench/grpc_idle_streams")
        self.nats_rtt_bin = self._binary("bench/nats_rtt")
        self.write_floor_bin = self._binary("bench/floor/tcp_write_floor")

    def _binary(self, rel):
        path = os.path.join(self.bin_dir, rel)
        if not os.access(path, os.X_OK):
            raise BenchError(f"{path} missing or not executable (--bin)")
        return path

    def start_nats(self):
        (port,) = self.ports.pick()
        child = self.children.start(
            "nats-server",
            [find_nats_server(), "-a", "127.0.0.1", "-p", str(port)])
        processes.wait_listening(port, 10, child)
        self.nats_url = f"nats://127.0.0.1:{port}"
        return self.nats_url

    # Building blocks.

    def start_loadgen(self, name, args, resolver_address="127.0.0.1:0"):
        argv = [self.loadgen_bin, f"--resolver_address={resolver_address}"] + args
        child = self.children.start(name, argv, capture_stdout=True)
        line = child.wait_for_line("resolver_port=", 30)
        return child, int(line.split("=", 1)[1])

    def finish_loadgen(self, child, timeout):
        """Waits for RESULT (SIGTERM after timeout: the loadgen then reports),
        then for the loadgen to exit 0."""
        try:
            line = child.wait_for_line("RESULT ", timeout)
        except BenchError as e:
            if not child.alive():
                raise
            child.send_signal(signal.SIGTERM)
            try:
                line = child.wait_for_line("RESULT ", 15)
            except BenchError:
                raise e from None
        return self._end_loadgen(child, line)

    def _end_loadgen(self, child, line):
        try:
            result = json.loads(line[len("RESULT "):])
        except ValueError as e:
            raise BenchError(f"{child.name}: bad RESULT line: {line[:300]}") from e
        code = self.children.stop(child, grace=10, wait_first=10)
        if code != 0:
            raise BenchError(f"{child.name} exited {code} after RESULT\n"
                             f"{processes.tail(child.log_path)}")
        return result

    def start_replicas(self, n, resolver_port, ports, resolve_mode=None,
                       transport="grpc"):
        """ports: 3*n picked ports (public, internal, metrics per replica).
        transport "websocket": each also hosts the browser gateway
        (--gateway_address) on a port of its own."""
        self._sets += 1
        prefix = f"bench{os.getpid()}s{self._sets}"
        config = os.path.join(self.log_dir, f"config-{prefix}.textproto")
        mode = f" resolve_mode: {resolve_mode}" if resolve_mode else ""
        with open(config, "w") as f:
            f.write('entities { name: "bench" resolver { target: '
                    f'"127.0.0.1:{resolver_port}" timeout_ms: 5000 }}{mode} }}\n')
        replicas = []
        for i in range(n):
            public, internal, metrics = ports[3 * i:3 * i + 3]
            gateway = (self.ports.pick()[0] if transport == "websocket"
                       else None)
            gateway_args = ([f"--gateway_address=127.0.0.1:{gateway}",
                             "--gateway_max_connections=100000"]
                            if gateway else [])
            child = self.children.start(f"replica{i}", [
                self.server_bin, "--bus=nats", f"--nats_url={self.nats_url}",
                f"--nats_subject_prefix={prefix}", f"--config={config}",
                f"--public_address=127.0.0.1:{public}",
                f"--internal_address=127.0.0.1:{internal}",
                f"--metrics_address=127.0.0.1:{metrics}",
                "--shutdown_grace=1s", "--goaway_reconnect_within=500ms",
                # The load generator opens up to 20,000 streams at once.
                "--stream_rate=0",
            ] + gateway_args + list(self.server_args))
            replicas.append(Replica(child, public, internal, metrics))
            replicas[-1].gateway_port = gateway
        for r in replicas:
            try:
                processes.wait_listening(r.metrics_port, 20, r.child)
                processes.wait_listening(r.public_port, 5, r.child)
                if r.gateway_port:
                    processes.wait_listening(r.gateway_port, 5, r.child)
            except BenchError as e:
                # The log's first line is the command (it names the config).
                output = "".join(
                    line for line in processes.tail(r.child.log_path)
                    .splitlines(keepends=True) if not line.startswith("$ "))
                rejected = (resolve_mode is not None and not r.child.alive()
                            and "resolve_mode" in output)
                self.children.stop_many([x.child for x in replicas], grace=5)
                if rejected:
                    raise ReplicaConfigRejected(output.strip()) from None
                raise e
        return replicas

    def stop_replicas(self, replicas):
        """Drains them (SIGTERM); a replica that had already died is a broken
        run.

        A replica logs "stopped" once drained and closed, then spends a
        second or two in process teardown (the metrics exposer's shutdown);
        nothing is measured there, so it is killed 0.3 s after "stopped".
        """
        dead = [r for r in replicas if not r.child.alive()]
        for r in replicas:
            if r.child.alive():
                r.child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        stopped_at = {}
        while time.monotonic() < deadline:
            waiting = False
            for r in replicas:
                if not r.child.alive():
                    continue
                if r not in stopped_at and _logged_stopped(r.child.log_path):
                    stopped_at[r] = time.monotonic()
                if r in stopped_at and time.monotonic() - stopped_at[r] > 0.3:
                    r.child.send_signal(signal.SIGKILL)
                waiting = True
            if not waiting:
                break
            time.sleep(0.02)
        self.children.stop_many([r.child for r in replicas], grace=1)
        if dead:
            r = dead[0]
            raise BenchError(f"{r.child.name} died during the run "
                             f"({r.child.popen.returncode})\n"
                             f"{processes.tail(r.child.log_path)}")

    # One measurement.

    def load_run(self, args, *, replicas=2, clients_on=None, notify_on=None,
                 resolve_mode=None, warmup=1.0, duration=5.0, hold=0.0,
                 notifying=True, sample_every=None, ready_timeout=None,
                 transport="grpc"):
        """Runs the loadgen against fresh replicas; returns figures.

        args: loadgen flags besides targets, warmup, duration and hold.
        clients_on / notify_on: replica indexes for --targets and
        --notify_targets (default: all). Samples every replica at READY, when
        notifying starts (READY + warmup) and ends (+ duration), every
        sample_every seconds meanwhile, and at the end of the hold.
        """
        n = replicas
        clients_on = list(range(n)) if clients_on is None else clients_on
        notify_on = list(range(n)) if notify_on is None else notify_on
        ports = self.ports.pick(3 * n)
        internals = [ports[3 * i + 1] for i in range(n)]
        lg_args = list(args) + [f"--transport={transport}",
            f"--warmup={duration_flag(warmup)}",
            f"--duration={duration_flag(duration)}",
            f"--hold={duration_flag(hold)}",
            f"--drain={duration_flag(self.drain)}",
        ]
        if notifying:
            lg_args.append("--notify_targets=" + ",".join(
                f"127.0.0.1:{internals[i]}" for i in notify_on))
        connections = _flag_int(args, "--connections", 0)
        if ready_timeout is None:
            ready_timeout = 60 + connections / 150
        # Replicas first, on a resolver port picked here: a loadgen started
        # before them would find them refusing and wait out gRPC's
        # reconnect backoff (a second) before opening streams.
        (resolver_port,) = self.ports.pick()
        reps = self.start_replicas(n, resolver_port, ports, resolve_mode,
                                   transport)
        lg_args.append("--targets=" + ",".join(
            f"127.0.0.1:{reps[i].client_port(transport)}" for i in clients_on))
        loadgen = None
        try:
            loadgen, _ = self.start_loadgen(
                "loadgen", lg_args, f"127.0.0.1:{resolver_port}")
            loadgen.wait_for_line("READY", ready_timeout)
            ready = [r.sample(metrics=True) for r in reps]
            points = []
            if notifying:
                points += [(warmup, "start"), (warmup + duration, "end")]
            if hold > 0:
                points.append(((warmup + duration if notifying else 0) + hold * 0.9,
                               "hold_end"))
            samples, marks, result_line = self._sample_until_result(
                loadgen, reps, ready[0]["t"], points, sample_every,
                timeout=(warmup + duration if notifying else 0) + hold + 60)
            end = [r.sample(metrics=True) for r in reps]
            result = self._end_loadgen(loadgen, result_line)
        finally:
            try:
                if loadgen is not None:
                    self.children.stop(loadgen, grace=10)
            finally:
                self.stop_replicas(reps)
        return {
            "result": result,
            "replicas": [
                _replica_figures(i, ready[i], marks, end[i], samples)
                for i in range(n)
            ],
            "rss_samples": samples,
        }

    def _sample_until_result(self, loadgen, reps, t0, points, sample_every,
                             timeout):
        """Samples at points (offset from t0) until the RESULT line."""
        points = sorted(points)
        marks = {}
        samples = []
        next_periodic = t0 + sample_every if sample_every else None
        deadline = t0 + timeout
        while True:
            now = time.monotonic()
            wake = [deadline]
            if points:
                wake.append(t0 + points[0][0])
            if next_periodic:
                wake.append(next_periodic)
            try:
                line = loadgen.next_line(min(wake) - now)
            except queue.Empty:
                line = ""
            if line is None:
                loadgen.popen.wait()
                raise BenchError(f"loadgen exited ({loadgen.popen.returncode}) "
                                 f"without RESULT\n"
                                 f"{processes.tail(loadgen.log_path)}")
            if line.startswith("RESULT "):
                return samples, marks, line
            now = time.monotonic()
            while points and now >= t0 + points[0][0]:
                _, label = points.pop(0)
                marks[label] = [r.sample(metrics=label != "hold_end")
                                for r in reps]
            if next_periodic and now >= next_periodic:
                samples.append({
                    "t": round(now - t0, 2),
                    "rss": [processes.rss_bytes(r.pid) for r in reps],
                })
                next_periodic += sample_every
            if now >= deadline:
                loadgen.send_signal(signal.SIGTERM)
                try:
                    return samples, marks, loadgen.wait_for_line("RESULT ", 15)
                except BenchError:
                    raise BenchError("loadgen hung: no RESULT "
                                     f"{timeout:.0f}s after READY\n"
                                     f"{processes.tail(loadgen.log_path)}") from None

    def idle_run(self, client_args, *, hold, replicas=1, settle=1.0,
                 ready_timeout=None, transport="grpc"):
        """Idle footprint: replicas measured with nothing connected, then with
        the loadgen's streams open (no notifies) during --hold.

        The resolver runs in its own loadgen (no clients) so that the
        replicas can be measured before any client connects.
        """
        n = replicas
        ports = self.ports.pick(3 * n)
        connections = _flag_int(client_args, "--connections", 0)
        if ready_timeout is None:
            ready_timeout = 60 + connections / 150
        resolver, resolver_port = self.start_loadgen(
            "resolver", ["--connections=0", "--hold=3600s"])
        reps, clients = [], None
        try:
            reps = self.start_replicas(n, resolver_port, ports,
                                       transport=transport)
            time.sleep(settle)
            base = [r.sample(metrics=True) for r in reps]
            clients, _ = self.start_loadgen("loadgen", list(client_args) + [
                f"--transport={transport}",
                "--targets=" + ",".join(
                    f"127.0.0.1:{r.client_port(transport)}" for r in reps),
                f"--hold={duration_flag(hold)}",
            ])
            clients.wait_for_line("READY", ready_timeout)
            ready = [r.sample(metrics=True) for r in reps]
            _, marks, line = self._sample_until_result(
                clients, reps, ready[0]["t"], [(hold * 0.9, "hold_end")], None,
                timeout=hold + 60)
            end = [r.sample(metrics=True) for r in reps]
            result = self._end_loadgen(clients, line)
            resolver.send_signal(signal.SIGTERM)
            resolver_result = self.finish_loadgen(resolver, 15)
        finally:
            try:
                if clients is not None:
                    self.children.stop(clients, grace=10)
                self.children.stop(resolver, grace=10)
            finally:
                if reps:
                    self.stop_replicas(reps)
        figures = []
        for i in range(n):
            f = _replica_figures(i, ready[i], marks, end[i], [])
            f["rss_base"] = base[i]["rss"]
            f["fds_base"] = base[i]["fds"]
            figures.append(f)
        return {"result": result, "resolver": resolver_result.get("resolver"),
                "replicas": figures}


    def raw_idle_run(self, streams, connections, *, hold, settle=1.0):
        """Raw gRPC's own footprint for the same streams and connections:
        bench/grpc_idle_streams' server RSS with nothing connected, then
        with the streams open and answered, sampled like idle_run's."""
        server = self.children.start("grpc_idle_streams-server", [
            self.idle_streams_bin, "--role=server", "--address=127.0.0.1:0"],
            capture_stdout=True)
        client = None
        try:
            port = int(server.wait_for_line("port=", 20).split("=", 1)[1])
            time.sleep(settle)
            base = processes.rss_bytes(server.pid)
            client = self.children.start("grpc_idle_streams-client", [
                self.idle_streams_bin, "--role=client",
                f"--target=127.0.0.1:{port}", f"--connections={connections}",
                f"--streams={streams}",
                f"--hold={duration_flag(hold + 60)}"], capture_stdout=True)
            client.wait_for_line("READY", 60 + connections / 150)
            time.sleep(hold * 0.9)
            held = processes.rss_bytes(server.pid)
        finally:
            if client is not None:
                self.children.stop(client, grace=5)
            self.children.stop(server, grace=5)
        return {"streams": streams, "connections": connections,
                "rss_base": base, "rss_hold": held,
                "rss_per_stream": (held - base) / streams}


def _logged_stopped(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - 400, 0))
            return b" stopped\n" in f.read()
    except OSError:
        return False


def _flag_int(args, name, default):
    for a in args:
        if a.startswith(name + "="):
            return int(float(a.split("=", 1)[1]))
    return default


def _replica_figures(i, ready, marks, end, samples):
    f = {
        "rss_ready": ready["rss"],
        "rss_end": end["rss"],
        "fds_ready": ready["fds"],
        "cpu_total_seconds": end["cpu"],
        "metrics_delta": metrics_delta(ready["metrics"], end["metrics"]),
    }
    rss = [ready["rss"], end["rss"]] + [s["rss"][i] for s in samples]
    f["rss_max"] = max(rss)
    if "start" in marks and "end" in marks:
        a, b = marks["start"][i], marks["end"][i]
        f["cpu_notify_seconds"] = b["cpu"] - a["cpu"]
        f["context_switches_notify"] = (b["context_switches"]
                                        - a["context_switches"])
        f["notify_seconds"] = b["t"] - a["t"]
        f["rss_notify_start"] = a["rss"]
        f["rss_notify_end"] = b["rss"]
        f["metrics_notify_delta"] = metrics_delta(a["metrics"], b["metrics"])
    if "hold_end" in marks:
        h = marks["hold_end"][i]
        f["rss_hold"] = h["rss"]
        f["fds_hold"] = h["fds"]
        f["cpu_hold_seconds"] = h["cpu"] - ready["cpu"]
        f["hold_seconds"] = h["t"] - ready["t"]
    return f
