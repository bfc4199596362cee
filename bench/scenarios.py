"""The benchmark scenarios of issue 6, each with bounded durations and counts.

A scenario is a function (ctx) -> dict with:
  "summary": the figures that matter, "runs"/"steps": every measurement with
  the loadgen's RESULT and the replicas' /proc and /metrics figures,
  "rows": lines of the results table (measure, figure, ratio, target, met),
  "notes": what was done differently from the issue's wording, and why.
`ctx` carries the Bench, the size profile, the calibration and what earlier
scenarios found (the capacity of scenario 3a feeds scenario 4).
Targets missed are reported in rows (met = False), never raised.
"""

import math

import cluster
import processes
from processes import BenchError, ReplicaConfigRejected, log

KB = 1024
MIB = 1024 * 1024

# Size profiles. "smoke" is every scenario at a tiny size (whole run < 60 s);
# "full" is the sizes, about 15 minutes on the 2-core machine.
FULL = {
    "grpc_limit": [(100, 100), (1000, 1000), (10000, 10000)],
    "grpc_limit_seconds": (1.0, 4.0),
    # Raw gRPC fan-out (calibration): warm-up and window of each rate step,
    # and the steps of its rising-rate search (None: search_max_steps).
    "grpc_fanout_seconds": (1.0, 4.0),
    "grpc_fanout_max_steps": None,
    # --io_threads of the completion-queue fan-out calibration: one thread
    # measured cheaper than two on this 2-core machine with the clients
    # beside it.
    "grpc_cq_io_threads": 1,
    "nats_rtt_count": 5000,
    "idle_one_per_connection": [1000, 5000, 10000, 19000],
    "idle_shared": [1000, 5000, 10000, 20000],
    "idle_streams_per_connection": 100,
    "idle_extra_keys": 101,
    "idle_extra_streams": 200,
    "idle_extra_distinct": True,
    "idle_hold": 5.0,
    "idle_settle": 1.0,
    "fanout_subscribers": [100, 1000, 10000],
    "fanout_start_deliveries": 25000,
    "fanout_target_rate": 250,
    "search_factor": 2.0,
    "search_max_steps": 6,
    "search_refine": 2,
    "search_retry_lower": 2,
    "step_warmup": 1.0,
    "step_duration": 4.0,
    "manykeys_connections": 1000,
    "manykeys_keys_per_stream": 10,
    "manykeys_key_space": 5000,
    "manykeys_batch": 10,
    "manykeys_start_rate": 2500,
    "manykeys_target_rate": 20000,
    "churn_connections": 10000,
    "churn_group_size": 10,
    "churn_per_minute": 0.1,
    "churn_default_rate": 2000,
    "churn_warmup": 2.0,
    "churn_duration": 30.0,
    "cross_floor_rate": 200,
    "cross_floor_duration": 10.0,
    "cross_levels": [0.1, 0.5, 0.8],
    "cross_duration": 8.0,
    "cross_min_rate": 0,
    "burst_connections": 100,
    "burst_size": 20,
    "burst_every": 0.2,
    "burst_resolve_delay": 0.02,
    "burst_duration": 10.0,
    "stall_connections": 1000,
    "stall_keys_per_stream": 10,
    "stall_key_space": 100,
    "stall_rate": 50,
    "stall_row_bytes": 2000,
    "stall_fraction": 0.01,
    "stall_warmup": 2.0,
    "stall_duration": 20.0,
    "mode_replicas": [1, 2, 4],
    "mode_connections_per_replica": 4,
    "mode_keys": 20,
    "mode_rate": 50,
    "mode_duration": 5.0,
    "ws_idle_connections": [1000, 10000, 19000],
    "ws_idle_keys": 10,
    "ws_fanout_subscribers": [1000, 10000],
    "ws_floor_rates": {1000: 100, 10000: 10},
}

SMOKE = dict(FULL, **{
    "grpc_limit": [(10, 10)],
    "grpc_limit_seconds": (0.2, 0.8),
    "grpc_fanout_seconds": (0.2, 0.6),
    "grpc_fanout_max_steps": 1,
    "grpc_cq_io_threads": 1,
    "nats_rtt_count": 200,
    "idle_one_per_connection": [20],
    "idle_shared": [40],
    "idle_streams_per_connection": 10,
    "idle_extra_keys": 11,
    "idle_extra_streams": 40,
    "idle_extra_distinct": False,
    "idle_hold": 0.6,
    "idle_settle": 0.3,
    "fanout_subscribers": [10],
    "fanout_start_deliveries": 200,
    "fanout_target_rate": None,
    "search_max_steps": 2,
    "search_refine": 0,
    "search_retry_lower": 0,
    "step_warmup": 0.2,
    "step_duration": 0.8,
    "manykeys_connections": 20,
    "manykeys_key_space": 100,
    "manykeys_start_rate": 200,
    "manykeys_target_rate": None,
    "churn_connections": 40,
    "churn_default_rate": 100,
    "churn_per_minute": 6.0,
    "churn_warmup": 0.2,
    "churn_duration": 1.0,
    "cross_floor_rate": 50,
    "cross_floor_duration": 1.0,
    "cross_levels": [0.5],
    "cross_duration": 0.8,
    "cross_min_rate": 100,
    "burst_connections": 10,
    "burst_size": 5,
    "burst_every": 0.1,
    "burst_resolve_delay": 0.01,
    "burst_duration": 1.0,
    "stall_connections": 20,
    "stall_key_space": 10,
    "stall_rate": 100,
    "stall_fraction": 0.1,
    "stall_warmup": 0.2,
    "stall_duration": 1.5,
    "mode_replicas": [1, 2],
    "mode_connections_per_replica": 2,
    "mode_keys": 5,
    "mode_rate": 20,
    "mode_duration": 1.0,
    "ws_idle_connections": [20],
    "ws_idle_keys": 3,
    "ws_fanout_subscribers": [10],
    "ws_floor_rates": {10: 50},
})

# The fan-out scenario's replicas; the raw gRPC fan-out runs as many servers.
FANOUT_REPLICAS = 2

# Issue 6's targets.
FANOUT_P99_MS = 50.0
FANOUT_VS_GRPC = 0.70
MANYKEYS_P99_MS = 10.0
IDLE_OWN_CONNECTION_BYTES = 15 * KB
IDLE_SHARED_BYTES = 2 * KB
IDLE_EXTRA_SUBSCRIPTION_BYTES = 200
# Issue 17's targets for WebSocket connections on the replica.
WS_IDLE_BYTES = 6 * KB
WS_EXTRA_SUBSCRIPTION_BYTES = 300
WS_CPU_VS_FLOOR = 1.5
CROSS_P50_MS = 1.0
CROSS_P99_MS = 5.0
BURST_CALLS_PER_REPLICA = 2.0
STALL_P99_RATIO = 1.2
# Keep in step with the server's --max_outbound_queue_bytes default.
SERVER_OUTBOUND_QUEUE_BYTES = 4 * MIB
# "Behind the offered load": fewer deliveries than this share of it.
DELIVERED_SHARE = 0.9

# The raw fan-out calibrations by --server_api, and their names in the table.
FANOUT_CALIBRATION = {"callback": "grpc_fanout_limit",
                      "cq": "grpc_cq_fanout_limit"}
FANOUT_API_NAME = {"callback": "callback API",
                   "cq": "completion queues"}

ORDER = ["idle", "fanout", "manykeys", "crossreplica", "coalescing",
         "resolvemode", "websocket"]


class Context:
    def __init__(self, bench, size, smoke):
        self.bench = bench
        self.size = size
        self.smoke = smoke
        self.calibration = {}
        self.found = {}  # figures later scenarios use (e.g. capacity)


# Helpers.

def row(measure, figure, ratio="", target="", met=None):
    return {"measure": measure, "figure": figure, "ratio": ratio,
            "target": target, "met": met}


def fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_ms(x):
    if x is None:
        return "-"
    return f"{x:.2f} ms" if x < 10 else f"{x:.0f} ms"


def fmt_bytes(x):
    if x is None:
        return "-"
    if abs(x) >= 10 * KB:
        return f"{x / KB:.1f} KB"
    return f"{x:.0f} B"


def fmt_ratio(x):
    return f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"


def latency_ms(result):
    lat = result.get("latency_us") or {}
    out = {q: (lat[q] / 1000.0 if lat.get(q) is not None else None)
           for q in ("p50", "p90", "p99", "p999", "max", "mean")}
    out["count"] = lat.get("count", 0)
    return out


def calls_by_reason(result, reason):
    by = (result.get("resolver") or {}).get("calls_by_reason") or {}
    return sum(v for k, v in by.items() if reason in str(k).upper())


def metric(replica_figures, name, key="metrics_delta"):
    return replica_figures.get(key, {}).get(name, 0.0)


def loadgen_rate_args(rate_changes, batch):
    return [f"--notify_rate={rate_changes / batch:g}", f"--notify_batch={batch}"]


def step_figures(run, rate, batch, subscribers_per_change, p99_limit_ms):
    """One rate step: figures and whether it met p99 and kept up."""
    r = run["result"]
    lat = latency_ms(r)
    offered = rate * subscribers_per_change
    reps = run["replicas"]
    cpu = sum(x.get("cpu_notify_seconds", 0.0) for x in reps)
    window = max((x.get("notify_seconds", 0.0) for x in reps), default=0.0)
    deliveries = r.get("deliveries", 0)
    dps = r.get("deliveries_per_second", 0.0)
    # Coalescing is by design (updates are full state): an update that skips
    # versions carries those changes too, so they count as kept up with.
    measured = r.get("duration_seconds") or 0
    reflected = ((deliveries + r.get("superseded", 0)) / measured
                 if measured else 0.0)
    f = {
        "rate": rate,
        "notify_calls_per_second": rate / batch,
        "offered_deliveries_per_second": offered,
        "deliveries_per_second": dps,
        "changes_reflected_per_second": reflected,
        "deliveries": deliveries,
        "latency_ms": lat,
        "notifies_sent": r.get("notifies_sent", 0),
        "changes_sent": r.get("changes_sent", 0),
        "notify_errors": r.get("notify_errors", 0),
        "superseded": r.get("superseded", 0),
        "stream_errors": r.get("stream_errors", 0),
        "reconnects": r.get("reconnects", 0),
        "server_cpu_us_per_delivery":
            cpu * 1e6 / deliveries if deliveries else None,
        "server_cpu_cores": cpu / window if window else None,
        # Both replicas' threads, over the measured window.
        "server_context_switches_per_change":
            sum(x.get("context_switches_notify", 0) for x in reps)
            / (rate * window) if window and rate else None,
        "client_cpu_seconds": r.get("client_cpu_seconds"),
        "client_cpu_cores": (r.get("client_cpu_seconds_measured", 0) / measured
                             if measured else None),
        "resolver_calls": (r.get("resolver") or {}).get("calls"),
        "resolver_change_calls": calls_by_reason(r, "CHANGE"),
        "resolver_calls_per_change":
            calls_by_reason(r, "CHANGE") / r["changes_sent"]
            if r.get("changes_sent") else None,
        "conflated": sum(metric(x, "entitysync_updates_conflated_total")
                         for x in reps),
        "dropped": sum(metric(x, "entitysync_updates_dropped_total")
                       for x in reps),
    }
    why = []
    if lat["count"] == 0:
        why.append("no latency samples")
    elif lat["p99"] > p99_limit_ms:
        why.append(f"p99 {lat['p99']:.1f} ms > {p99_limit_ms:g} ms")
    if reflected < DELIVERED_SHARE * offered:
        why.append(f"delivered {reflected:.0f}/s of {offered:.0f}/s offered "
                   "(superseded versions included)")
    if f["notify_errors"] > 0.01 * max(f["notifies_sent"], 1):
        why.append(f"{f['notify_errors']} Notify errors")
    f["ok"] = not why
    f["why_not"] = why
    f["raw"] = run
    log(f"  rate {rate:g}/s: {fmt_rate(dps)} deliveries/s "
        f"(+{fmt_rate(max(reflected - dps, 0))} superseded) of "
        f"{fmt_rate(offered)} offered, p50 {fmt_ms(lat['p50'])}, p99 "
        f"{fmt_ms(lat['p99'])}, max {fmt_ms(lat['max'])}"
        + ("" if not why else " -- " + "; ".join(why)))
    return f


def rising_rate(run_step, start, size, must_include=None):
    """Steps the rate up until a step fails; returns (steps, best step).

    The rate grows by search_factor from start until a step fails. A first
    step that fails is retried lower (by factor squared, search_retry_lower
    times at most). Then the gap between the last good and the first bad
    rate is narrowed by trying its geometric middle (search_refine times).
    must_include: a rate (a target) that is measured too, unless the search
    failed far below it.
    """
    factor = size["search_factor"]
    steps, best, bad = [], None, None
    rate = start
    for _ in range(size["search_max_steps"]):
        s = run_step(rate)
        steps.append(s)
        if not s["ok"]:
            bad = s
            break
        best = s
        rate *= factor
    if best is None and bad is not None:
        for _ in range(size["search_retry_lower"]):
            rate = bad["rate"] / (factor * factor)
            if rate * size["step_duration"] < 5:
                break
            s = run_step(rate)
            steps.append(s)
            if s["ok"]:
                best = s
                break
            bad = s
    for _ in range(size["search_refine"]):
        if best is None or bad is None or bad["rate"] / best["rate"] < 1.3:
            break
        s = run_step(round(math.sqrt(best["rate"] * bad["rate"]), 2))
        steps.append(s)
        if s["ok"]:
            best = s
        else:
            bad = s
    if must_include and not any(abs(s["rate"] - must_include) < 1e-6
                                for s in steps):
        top = max((s["rate"] for s in steps if s["ok"]), default=0)
        if top * factor * factor >= must_include:
            steps.append(run_step(must_include))
    steps.sort(key=lambda s: s["rate"])
    return steps, best


def grpc_limit_for(ctx, streams):
    """The calibration figure for this many streams (nearest measured)."""
    cal = ctx.calibration.get("grpc_stream_limit") or []
    if not cal:
        return None
    return min(cal, key=lambda c: abs(math.log(max(c["streams"], 1))
                                      - math.log(max(streams, 1))))


def grpc_fanout_for(ctx, streams, api="callback"):
    """The raw gRPC fan-out calibration for this many streams (nearest), on
    the callback API or on completion queues (`api` "cq")."""
    cal = ctx.calibration.get(FANOUT_CALIBRATION[api]) or []
    if not cal:
        return None
    return min(cal, key=lambda c: abs(math.log(max(c["streams"], 1))
                                      - math.log(max(streams, 1))))


# Calibration.

def calibration_used(ctx):
    """The calibration figures a scenario's ratios were computed with."""
    cal = ctx.calibration or {}
    rtt = (cal.get("nats_rtt") or {}).get("rtt_us") or {}
    return {
        "grpc_messages_per_second_by_streams": {
            str(c.get("streams")): c.get("messages_per_second")
            for c in cal.get("grpc_stream_limit") or []},
        "grpc_fanout_messages_per_second_by_streams": {
            str(c.get("streams")): c.get("messages_per_second")
            for c in cal.get("grpc_fanout_limit") or []},
        "grpc_cq_fanout_messages_per_second_by_streams": {
            str(c.get("streams")): c.get("messages_per_second")
            for c in cal.get("grpc_cq_fanout_limit") or []},
        "nats_rtt_us": {q: rtt.get(q) for q in ("p50", "p99")},
    }


def grpc_fanout_step(bench, size, streams, connections, rate,
                     servers=FANOUT_REPLICAS, api="callback"):
    """One rate of the raw gRPC fan-out: `servers` fresh `grpc_stream_limit
    --pattern=fanout` servers each making `rate` changes/s, each change one
    message to every stream it serves, and a fresh client whose connections
    alternate between them (as the fan-out scenario's between replicas);
    judged like a fan-out step. `api` is the servers' --server_api: callback
    or cq (completion queues on --io_threads threads)."""
    warmup, duration = size["grpc_fanout_seconds"]
    ready_timeout = 30 + connections / 100
    started, client = [], None
    try:
        for i in range(servers):
            started.append(bench.children.start(f"grpc_fanout-server{i}", [
                bench.stream_limit_bin, "--role=server", "--pattern=fanout",
                f"--rate={rate:g}", "--address=127.0.0.1:0",
                f"--server_api={api}",
                f"--io_threads={size['grpc_cq_io_threads']}"],
                capture_stdout=True))
        targets = ",".join(
            "127.0.0.1:" + srv.wait_for_line("port=", 20).split("=", 1)[1]
            for srv in started)
        client = bench.children.start("grpc_fanout-client", [
            bench.stream_limit_bin, "--role=client", "--pattern=fanout",
            f"--rate={rate:g}", f"--target={targets}",
            f"--connections={connections}", f"--streams={streams}",
            f"--warmup={cluster.duration_flag(warmup)}",
            f"--duration={cluster.duration_flag(duration)}",
            f"--drain={cluster.duration_flag(bench.drain)}",
            f"--ready_timeout={cluster.duration_flag(ready_timeout)}"],
            capture_stdout=True)
        # The servers' CPU over the client's window only (not the connects).
        client.wait_for_line("window_start", ready_timeout + warmup + 30)
        cpu0 = sum(processes.cpu_seconds(srv.pid) for srv in started)
        client.wait_for_line("window_end", duration + 30)
        cpu = sum(processes.cpu_seconds(srv.pid) for srv in started) - cpu0
        result = bench.finish_loadgen(client, bench.drain + 30)
    finally:
        if client is not None:
            bench.children.stop(client, grace=5)
        bench.children.stop_many(started, grace=5)
    lat = latency_ms(result)
    offered = rate * streams
    measured = result.get("duration_seconds") or 0
    deliveries = result.get("deliveries", 0)
    superseded = result.get("superseded", 0)
    reflected = (deliveries + superseded) / measured if measured else 0.0
    f = {
        "rate": rate,
        "streams": streams,
        "connections": connections,
        "servers": servers,
        "offered_messages_per_second": offered,
        "messages_per_second": result.get("messages_per_second", 0.0),
        "changes_reflected_per_second": reflected,
        "deliveries": deliveries,
        "superseded": superseded,
        "latency_ms": lat,
        "server_cpu_us_per_message":
            cpu * 1e6 / deliveries if deliveries else None,
        "server_cpu_cores": cpu / measured if measured else None,
        "client_cpu_cores": (result.get("client_cpu_seconds", 0) / measured
                             if measured else None),
        "failed_streams": result.get("failed_streams", 0),
        "server_api": api,
    }
    why = []
    if lat["count"] == 0:
        why.append("no latency samples")
    elif lat["p99"] > FANOUT_P99_MS:
        why.append(f"p99 {lat['p99']:.1f} ms > {FANOUT_P99_MS:g} ms")
    if reflected < DELIVERED_SHARE * offered:
        why.append(f"delivered {reflected:.0f}/s of {offered:.0f}/s offered "
                   "(superseded versions included)")
    if f["failed_streams"] or result.get("malformed"):
        why.append(f"{f['failed_streams']} streams failed, "
                   f"{result.get('malformed', 0)} malformed messages")
    f["ok"] = not why
    f["why_not"] = why
    f["raw"] = result
    log(f"  raw {api} fan-out, {streams} streams at {rate:g}/s: "
        f"{fmt_rate(f['messages_per_second'])} msg/s "
        f"(+{fmt_rate(max(reflected - f['messages_per_second'], 0))} "
        f"superseded) of {fmt_rate(offered)} offered, p50 "
        f"{fmt_ms(lat['p50'])}, p99 {fmt_ms(lat['p99'])}, max "
        f"{fmt_ms(lat['max'])}" + ("" if not why else " -- " + "; ".join(why)))
    return f


def grpc_fanout_limit(ctx, streams, api="callback"):
    """The raw gRPC fan-out limit for `streams` subscribers, one connection
    each: the fan-out scenario's rising-rate search and p99 criterion."""
    size = ctx.size
    search = dict(size)
    if size.get("grpc_fanout_max_steps"):
        search["search_max_steps"] = size["grpc_fanout_max_steps"]
    steps, best = rising_rate(
        lambda rate: grpc_fanout_step(ctx.bench, size, streams, streams, rate,
                                      api=api),
        size["fanout_start_deliveries"] / streams, search)
    return {
        "server_api": api,
        "streams": streams,
        "connections": streams,
        "servers": FANOUT_REPLICAS,
        "best_rate": best["rate"] if best else None,
        "messages_per_second": best["messages_per_second"] if best else None,
        "p99_ms": best["latency_ms"]["p99"] if best else None,
        "server_cpu_us_per_message":
            best["server_cpu_us_per_message"] if best else None,
        "steps": steps,
    }


def calibration(ctx):
    bench, size = ctx.bench, ctx.size
    warmup, duration = size["grpc_limit_seconds"]
    limits = []
    for streams, connections in size["grpc_limit"]:
        server = bench.children.start("grpc_stream_limit-server", [
            bench.stream_limit_bin, "--role=server",
            "--address=127.0.0.1:0"], capture_stdout=True)
        try:
            port = int(server.wait_for_line("port=", 20).split("=", 1)[1])
            cpu0 = processes.cpu_seconds(server.pid)
            client = bench.children.start("grpc_stream_limit-client", [
                bench.stream_limit_bin, "--role=client",
                f"--target=127.0.0.1:{port}", f"--connections={connections}",
                f"--streams={streams}", f"--duration={duration:g}s",
                f"--warmup={warmup:g}s"], capture_stdout=True)
            result = bench.finish_loadgen(
                client, 60 + warmup + duration + connections / 150)
            # The server writes during the warm-up and the measured window
            # alike: its CPU per message is over both.
            messages = result.get("messages_per_second", 0) * (warmup + duration)
            if messages:
                result["server_cpu_us_per_message"] = (
                    (processes.cpu_seconds(server.pid) - cpu0) * 1e6 / messages)
        finally:
            bench.children.stop(server, grace=5)
        result.setdefault("streams", streams)
        result.setdefault("connections", connections)
        limits.append(result)
        log(f"  raw gRPC, {streams} streams: "
            f"{fmt_rate(result.get('messages_per_second'))} msg/s")
    # Kept as soon as measured: the scenarios' ratios survive a later
    # calibration failure.
    ctx.calibration = {"grpc_stream_limit": limits}
    fanouts = []
    for api, key in FANOUT_CALIBRATION.items():
        ctx.calibration[key] = []
        for streams in size["fanout_subscribers"]:
            c = grpc_fanout_limit(ctx, streams, api)
            ctx.calibration[key].append(c)
            fanouts.append(c)
    rtt = bench.finish_loadgen(bench.children.start("nats_rtt", [
        bench.nats_rtt_bin, f"--nats_url={bench.nats_url}",
        f"--count={size['nats_rtt_count']}", "--payload_bytes=150"],
        capture_stdout=True), 120)
    ctx.calibration["nats_rtt"] = rtt
    rows = [row(f"raw gRPC server streaming, {c['streams']:,} streams on "
                f"{c['connections']:,} connections: messages/s; server CPU "
                "per message",
                f"{fmt_rate(c['messages_per_second'])} msg/s; "
                + (f"{c['server_cpu_us_per_message']:.2f} us"
                   if c.get("server_cpu_us_per_message") else "-"))
            for c in limits]
    for c in fanouts:
        cpu = c["server_cpu_us_per_message"]
        rows.append(row(
            f"raw gRPC fan-out ({FANOUT_API_NAME[c['server_api']]}), "
            f"{c['streams']:,} streams on "
            f"{c['connections']:,} connections to {c['servers']} servers, one "
            "message per stream per change: messages/s with p99 <= "
            f"{FANOUT_P99_MS:g} ms (change rate); server CPU per message",
            (f"{fmt_rate(c['messages_per_second'])} msg/s "
             f"({c['best_rate']:g}/s, p99 {fmt_ms(c['p99_ms'])}); "
             + (f"{cpu:.2f} us" if cpu is not None else "-")
             if c["best_rate"] is not None else "no rate met it")))
    r = rtt.get("rtt_us", {})
    rows.append(row("NATS publish-subscribe round trip p50 / p99 / max",
                    " / ".join(fmt_ms(r.get(q, 0) / 1000)
                               for q in ("p50", "p99", "max"))))
    return {"summary": ctx.calibration, "rows": rows, "notes": []}


# 1. Idle footprint.

def idle(ctx):
    bench, size = ctx.bench, ctx.size
    hold, settle = size["idle_hold"], size["idle_settle"]
    spc = size["idle_streams_per_connection"]
    runs = []

    def measure(label, streams, per_connection, keys, key_space):
        connections = streams // per_connection
        run = bench.idle_run([
            f"--connections={connections}",
            f"--streams_per_connection={per_connection}",
            f"--keys_per_stream={keys}", f"--key_space={key_space}",
        ], hold=hold, settle=settle)
        rep = run["replicas"][0]
        res = run["result"]
        delta = rep["rss_hold"] - rep["rss_base"]
        f = {
            "label": label, "streams": res.get("streams", streams),
            "connections": connections, "streams_per_connection": per_connection,
            "keys_per_stream": keys, "key_space": key_space,
            "subscriptions": res.get("subscriptions"),
            "rss_base": rep["rss_base"], "rss_hold": rep["rss_hold"],
            "rss_delta": delta,
            "rss_per_stream": delta / streams,
            "fds_base": rep["fds_base"], "fds_hold": rep["fds_hold"],
            "idle_cpu_percent": 100.0 * rep["cpu_hold_seconds"]
                                / max(rep["hold_seconds"], 1e-9),
            "ready_seconds": res.get("ready_seconds"),
            "subscribe_errors": res.get("subscribe_errors", 0),
            "client_rss_bytes": res.get("client_rss_bytes"),
            "stream_errors": res.get("stream_errors", 0),
            "raw": run,
        }
        if keys == 1:
            # The floor: raw gRPC holding the same idle streams.
            raw = bench.raw_idle_run(streams, connections, hold=hold,
                                     settle=settle)
            f["grpc_rss_per_stream"] = raw["rss_per_stream"]
            f["ratio_to_grpc"] = (f["rss_per_stream"] / raw["rss_per_stream"]
                                  if raw["rss_per_stream"] > 0 else None)
        log(f"  {label}, {streams:,} streams: "
            f"{fmt_bytes(f['rss_per_stream'])} per stream"
            + (f" (raw gRPC {fmt_bytes(f['grpc_rss_per_stream'])})"
               if "grpc_rss_per_stream" in f else "")
            + f", {f['fds_hold']} fds, {f['idle_cpu_percent']:.1f}% CPU, "
            f"ready in {f['ready_seconds']}s")
        if f["streams"] != streams:
            raise BenchError(f"idle {label}: {f['streams']} streams ready of "
                             f"{streams}")
        runs.append(f)
        return f

    own = [measure("own connection", n, 1, 1, n)
           for n in size["idle_one_per_connection"]]
    shared = [measure(f"{spc} per connection", n, spc, 1, n)
              for n in size["idle_shared"]]
    # Extra subscriptions: the same streams and key set with K keys each
    # instead of one; the keys already exist, so the difference is the cost
    # of a subscription alone.
    k = size["idle_extra_keys"]
    n = size["idle_extra_streams"]
    base = next((f for f in shared if f["streams"] == n), None) or measure(
        f"{spc} per connection", n, spc, 1, n)
    more = measure(f"{spc} per connection, {k} keys each", n, spc, k, n)

    def per_extra(f):
        subs = f["subscriptions"] or n * k
        return ((f["rss_delta"] - base["rss_delta"])
                / max(subs - base["subscriptions"], 1))

    extra = per_extra(more)
    distinct = d = None
    if size["idle_extra_distinct"]:
        d = measure(f"{spc} per connection, {k} distinct keys each", n, spc,
                    k, n * k)
        distinct = per_extra(d)

    largest_own, largest_shared = own[-1], shared[-1]
    rows = []
    for f in own + shared:
        rows.append(row(
            f"idle, {f['streams']:,} streams, {f['label']}: RSS per stream; "
            f"fds; idle CPU",
            f"{fmt_bytes(f['rss_per_stream'])}; {f['fds_hold']:,} fds; "
            f"{f['idle_cpu_percent']:.1f}% of a core",
            ratio=(f"{f['ratio_to_grpc']:.2f}x raw gRPC's "
                   f"{fmt_bytes(f['grpc_rss_per_stream'])} per idle stream"
                   if f.get("ratio_to_grpc") else "")))
    rows[len(own) - 1].update(
        target=f"<= {IDLE_OWN_CONNECTION_BYTES // KB} KB",
        met=largest_own["rss_per_stream"] <= IDLE_OWN_CONNECTION_BYTES)
    rows[-1].update(target=f"<= {IDLE_SHARED_BYTES // KB} KB",
                    met=largest_shared["rss_per_stream"] <= IDLE_SHARED_BYTES)
    def failed(f):
        if not f["subscribe_errors"]:
            return ""
        return (f" ({f['subscribe_errors']:,} of {n * k:,} subscribes "
                "failed)")

    rows.append(row(f"idle, extra subscription on an existing stream "
                    f"({n:,} streams x {k - 1} more keys, keys shared)",
                    fmt_bytes(extra) + failed(more),
                    target=f"<= {IDLE_EXTRA_SUBSCRIPTION_BYTES} B",
                    met=extra <= IDLE_EXTRA_SUBSCRIPTION_BYTES))
    if distinct is not None:
        rows.append(row("idle, extra subscription to a key no one else has "
                        "(a new key: hub entry + NATS subscription)",
                        fmt_bytes(distinct) + failed(d)))
    notes = [
        "One replica (nats bus). RSS per stream = (RSS during --hold minus "
        "RSS with nothing connected) / streams; each stream subscribes to "
        "its own key. Targets are judged at the largest count. The ratio is "
        "to bench/grpc_idle_streams: a raw gRPC callback server holding the "
        "same number of idle streams on the same connections (one read "
        "pending, one small message written), measured the same way: the "
        "floor gRPC itself sets.",
        f"Extra subscriptions: {n:,} streams ({spc} per connection) with {k} "
        "keys each against the same streams with one (the loadgen keeps at "
        "most 500 subscriptions waiting for their snapshot); bytes = RSS "
        "difference / extra subscriptions that succeeded. RSS includes what "
        "the allocator kept from the subscribe phase.",
    ]
    if ctx.size is FULL:
        notes.append(
            "20,000 streams with one connection each need 20,000 sockets in "
            "the replica and in the loadgen, over the 20,000 fd hard limit "
            "(ulimit -Hn) of this machine: that row runs 19,000 streams.")
    return {
        "summary": {
            "own_connection": [_idle_point(f) for f in own],
            "shared_connection": [_idle_point(f) for f in shared],
            "extra_subscription_bytes": extra,
            "extra_distinct_key_bytes": distinct,
        },
        "runs": runs, "rows": rows, "notes": notes,
    }


def _idle_point(f):
    return {k: f.get(k) for k in ("streams", "connections", "rss_per_stream",
                                  "rss_delta", "fds_hold", "idle_cpu_percent",
                                  "grpc_rss_per_stream", "ratio_to_grpc")}


# 2. Single-key fan-out.

def fanout(ctx):
    bench, size = ctx.bench, ctx.size
    out = {"by_subscribers": []}
    rows = []
    for subs in size["fanout_subscribers"]:
        def step(rate, subs=subs):
            run = bench.load_run([
                f"--connections={subs}", "--keys_per_stream=1",
                "--key_space=1", "--notify_key=0",
            ] + loadgen_rate_args(rate, 1), replicas=FANOUT_REPLICAS,
                warmup=size["step_warmup"], duration=size["step_duration"])
            return step_figures(run, rate, 1, subs, FANOUT_P99_MS)

        target = size["fanout_target_rate"] if subs == 1000 else None
        start = size["fanout_start_deliveries"] / subs
        if target:
            # Land on the target rate exactly: start a power of the factor
            # below it.
            k = math.floor(math.log(target / start, size["search_factor"]))
            start = target / size["search_factor"] ** max(k, 0)
        steps, best = rising_rate(step, start, size, must_include=target)
        cal = grpc_limit_for(ctx, subs)
        best_dps = best["deliveries_per_second"] if best else None
        ratio = (best_dps / cal["messages_per_second"]
                 if best and cal and cal.get("messages_per_second") else None)
        raw = grpc_fanout_for(ctx, subs)
        raw_mps = raw["messages_per_second"] if raw else None
        raw_cpu = raw["server_cpu_us_per_message"] if raw else None
        raw_ratio = best_dps / raw_mps if best and raw_mps else None
        # The best raw gRPC does here: the completion-queue fan-out.
        cq = grpc_fanout_for(ctx, subs, "cq")
        cq_mps = cq["messages_per_second"] if cq else None
        cq_cpu = cq["server_cpu_us_per_message"] if cq else None
        cq_ratio = best_dps / cq_mps if best and cq_mps else None
        entry = {
            "subscribers": subs,
            "best_rate": best["rate"] if best else None,
            "best_deliveries_per_second": best_dps,
            "best_p99_ms": best["latency_ms"]["p99"] if best else None,
            "cpu_us_per_delivery":
                best["server_cpu_us_per_delivery"] if best else None,
            "context_switches_per_change":
                best["server_context_switches_per_change"] if best else None,
            "grpc_limit_messages_per_second":
                cal["messages_per_second"] if cal else None,
            "ratio_to_grpc_limit": ratio,
            "grpc_server_cpu_us_per_message":
                cal.get("server_cpu_us_per_message") if cal else None,
            "grpc_fanout_limit_messages_per_second": raw_mps,
            "grpc_fanout_streams": raw["streams"] if raw else None,
            "grpc_fanout_best_rate": raw["best_rate"] if raw else None,
            "grpc_fanout_p99_ms": raw["p99_ms"] if raw else None,
            "grpc_fanout_server_cpu_us_per_message": raw_cpu,
            "ratio_to_grpc_fanout_limit": raw_ratio,
            "grpc_cq_fanout_limit_messages_per_second": cq_mps,
            "grpc_cq_fanout_best_rate": cq["best_rate"] if cq else None,
            "grpc_cq_fanout_p99_ms": cq["p99_ms"] if cq else None,
            "grpc_cq_fanout_server_cpu_us_per_message": cq_cpu,
            "ratio_to_grpc_cq_fanout_limit": cq_ratio,
            "cpu_ratio_to_grpc_cq_fanout":
                best["server_cpu_us_per_delivery"] / cq_cpu
                if best and best["server_cpu_us_per_delivery"] and cq_cpu
                else None,
            # (offered messages/s, p99 ms) of the raw fan-out's steps, for
            # the plot.
            "grpc_fanout_points": [
                [st["offered_messages_per_second"], st["latency_ms"]["p99"]]
                for st in (raw["steps"] if raw else [])
                if st["latency_ms"]["p99"]],
            "steps": steps,
        }
        out["by_subscribers"].append(entry)
        cpu = entry["cpu_us_per_delivery"]
        rows.append(row(
            f"fan-out, {subs:,} subscribers of one key on 2 replicas: "
            f"deliveries/s with p99 <= {FANOUT_P99_MS:g} ms (Notify rate); "
            "server CPU per delivery; context switches per change (both "
            "replicas)",
            (f"{fmt_rate(best_dps)}/s ({best['rate']:g}/s, p99 "
             f"{fmt_ms(best['latency_ms']['p99'])}); "
             + (f"{cpu:.2f} us" if cpu is not None else "-")
             + (f"; {entry['context_switches_per_change']:.0f}"
                if entry["context_switches_per_change"] is not None else "")
             if best else "no rate met it"),
            ratio=((f"{fmt_ratio(ratio)} of raw gRPC "
                    f"({fmt_rate(cal['messages_per_second'])}/s)"
                    if ratio is not None else "")
                   + (f"; CPU per delivery "
                      f"{cpu / cal['server_cpu_us_per_message']:.1f}x"
                      " raw gRPC's per message"
                      if best and cpu and cal
                      and cal.get("server_cpu_us_per_message") else "")
                   + _raw_fanout_ratio_text(raw_ratio, raw_mps, cpu, raw_cpu)
                   + _raw_fanout_ratio_text(cq_ratio, cq_mps, cpu, cq_cpu,
                                            "completion-queue")
                   ).lstrip("; "),
            target=f">= {FANOUT_VS_GRPC:.0%} of raw gRPC",
            met=(ratio >= FANOUT_VS_GRPC) if ratio is not None else False))
        if target:
            at = next((s for s in steps if abs(s["rate"] - target) < 1e-6),
                      None)
            rows.append(row(
                f"fan-out, {subs:,} subscribers at {target:g} Notifies/s",
                (f"{fmt_rate(at['deliveries_per_second'])} deliveries/s "
                 f"(+{fmt_rate(max(at['changes_reflected_per_second'] - at['deliveries_per_second'], 0))}"
                 f"/s superseded), p99 {fmt_ms(at['latency_ms']['p99'])}"
                 if at else "not run: the search failed far below it"),
                target=f"{fmt_rate(target * subs)}/s with p99 <= "
                       f"{FANOUT_P99_MS:g} ms",
                met=at["ok"] if at else False))
    return {"summary": out, "rows": rows, "notes": [
        "Each subscriber has its own connection; connections alternate "
        "between the two replicas; Notify calls alternate too. A step is "
        f"met when p99 <= {FANOUT_P99_MS:g} ms and the updates received, "
        "counting the versions they superseded (coalesced changes, by "
        f"design), reach {DELIVERED_SHARE:.0%} of the offered load; the rate "
        "doubles until a step fails, then the gap is narrowed by its "
        "geometric middle up to twice. Deliveries/s are messages received; "
        "CPU per delivery is both "
        "replicas' CPU time over the measured window divided by them.",
        "Two ratios: to the raw gRPC streaming limit (back-to-back writes, "
        "many messages per sendmsg; the issue's target) and to the raw gRPC "
        "fan-out limit (calibration): trivial servers, as many as replicas "
        "here, each making changes at the same rate, each change one "
        "pre-serialized message to every stream it serves, at most one "
        "write in flight per stream and the newest pending (conflation), "
        "the same subscriber count on one connection each, judged by the same "
        "search, p99 limit and 90% rule. That is this pattern with no "
        "entitysync logic: one sendmsg and one completion per delivery."]}


def _raw_fanout_ratio_text(ratio, raw_mps, cpu, raw_cpu, api="callback"):
    """The fan-out row's ratio to a raw gRPC fan-out (`api`: callback or
    completion-queue), after the streaming ratio."""
    if ratio is None:
        return ""
    text = (f"; {fmt_ratio(ratio)} of raw {api} gRPC fan-out "
            f"({fmt_rate(raw_mps)}/s)")
    if cpu and raw_cpu:
        text += f", CPU per delivery {cpu / raw_cpu:.2f}x its per message"
    return text


# 3. Many keys.

def manykeys_args(size, rate):
    return [
        f"--connections={size['manykeys_connections']}",
        f"--keys_per_stream={size['manykeys_keys_per_stream']}",
        f"--key_space={size['manykeys_key_space']}",
    ] + loadgen_rate_args(rate, size["manykeys_batch"])


def manykeys_per_change(size):
    return (size["manykeys_connections"] * size["manykeys_keys_per_stream"]
            / size["manykeys_key_space"])


def manykeys(ctx):
    bench, size = ctx.bench, ctx.size
    batch = size["manykeys_batch"]
    per_change = manykeys_per_change(size)

    def step(rate):
        run = bench.load_run(manykeys_args(size, rate), replicas=2,
                             warmup=size["step_warmup"],
                             duration=size["step_duration"])
        return step_figures(run, rate, batch, per_change, MANYKEYS_P99_MS)

    steps, best = rising_rate(step, size["manykeys_start_rate"], size,
                              must_include=size["manykeys_target_rate"])
    notes = []
    if best:
        ctx.found["manykeys_capacity"] = best["rate"]
    else:
        ctx.found["manykeys_capacity"] = min(s["rate"] for s in steps)
        notes.append("No rate met the p99 limit: scenario 4 takes the "
                     "lowest rate tried as the capacity.")
    cal = grpc_limit_for(ctx, size["manykeys_connections"])
    best_dps = best["deliveries_per_second"] if best else None
    ratio = (best_dps / cal["messages_per_second"]
             if best and cal and cal.get("messages_per_second") else None)
    rows = [row(
        f"many keys, {size['manykeys_connections']:,} clients x "
        f"{size['manykeys_keys_per_stream']} keys (key space "
        f"{size['manykeys_key_space']:,}, {per_change:g} subscribers per key), "
        f"2 replicas: highest Notify rate with p99 <= {MANYKEYS_P99_MS:g} ms",
        (f"{fmt_rate(best['rate'])} changes/s = "
         f"{fmt_rate(best_dps)} deliveries/s, p50 / p99 "
         f"{fmt_ms(best['latency_ms']['p50'])} / "
         f"{fmt_ms(best['latency_ms']['p99'])}, "
         f"{best['server_cpu_us_per_delivery']:.2f} us CPU per delivery, "
         f"{best['resolver_calls_per_change']:.2f} resolver calls per change"
         if best else "no rate met it"),
        ratio=(f"{fmt_ratio(ratio)} of raw gRPC" if ratio is not None else ""),
        target=(f">= {fmt_rate(size['manykeys_target_rate'])}/s"
                if size["manykeys_target_rate"] else ""),
        met=(best is not None and best["rate"] >= size["manykeys_target_rate"])
        if size["manykeys_target_rate"] else None)]

    # 3b: personal + group keys, churning connections.
    rate = ctx.found.get("manykeys_capacity", size["churn_default_rate"]) * 0.25
    if ctx.smoke or not best:
        rate = size["churn_default_rate"]
    conns, g = size["churn_connections"], size["churn_group_size"]
    keys = conns + math.ceil(conns / g)
    per_change = (conns + math.ceil(conns / g) * g) / keys
    run = bench.load_run([
        f"--connections={conns}", "--key_pattern=personal_group",
        f"--group_size={g}", f"--churn_per_minute={size['churn_per_minute']}",
    ] + loadgen_rate_args(rate, batch), replicas=2,
        warmup=size["churn_warmup"], duration=size["churn_duration"])
    churn = step_figures(run, rate, batch, per_change, MANYKEYS_P99_MS)
    lat = churn["latency_ms"]
    rows.append(row(
        f"many keys, {conns:,} clients with a personal key and a {g}-member "
        f"group key, {size['churn_per_minute']:.0%} of connections churning "
        f"per minute, 2 replicas, {fmt_rate(rate)} changes/s",
        f"{fmt_rate(churn['deliveries_per_second'])} deliveries/s, p50 / p99 "
        f"{fmt_ms(lat['p50'])} / {fmt_ms(lat['p99'])}; "
        f"{churn['resolver_calls_per_change']:.2f} resolver calls per change; "
        f"{churn['reconnects']} reconnects"
        if churn["resolver_calls_per_change"] is not None else "no changes"))
    return {
        "summary": {
            "capacity_changes_per_second": best["rate"] if best else None,
            "capacity_deliveries_per_second": best_dps,
            "ratio_to_grpc_limit": ratio,
            "grpc_server_cpu_us_per_message":
                cal.get("server_cpu_us_per_message") if cal else None,
            "steps": steps,
            "churn": churn,
        },
        "rows": rows,
        "notes": notes + [
            f"A Notify call carries {batch} changes on uniformly chosen keys; "
            "rates count changes (keys notified) per second. Stream g "
            "subscribes keys g*K..g*K+K-1 (mod the key space), so both "
            "subscribers of a key sit on the same replica; every notice "
            "still travels through NATS. Resolver calls per change: "
            "CHANGE-reason Resolve calls (batched by the replicas) over "
            "changes sent.",
            "The churn run notifies at a quarter of the capacity found "
            "above."],
    }


# 4. Cross-replica latency.

def crossreplica(ctx):
    bench, size = ctx.bench, ctx.size
    notes = ["Clients on replica 0, Notify on replica 1 only, so every "
             "delivery crosses NATS."]
    levels = []
    floor_run = bench.load_run([
        "--connections=1", "--keys_per_stream=1", "--key_space=1",
        "--notify_key=0"] + loadgen_rate_args(size["cross_floor_rate"], 1),
        replicas=2, clients_on=[0], notify_on=[1], warmup=size["step_warmup"],
        duration=size["cross_floor_duration"])
    floor = step_figures(floor_run, size["cross_floor_rate"], 1, 1,
                         CROSS_P99_MS)
    floor["level"] = "floor"
    levels.append(floor)

    capacity = ctx.found.get("manykeys_capacity")
    if capacity is None:
        notes.append("Scenario 3a did not run (or found no rate): capacity "
                     "measured here with a short search.")
        quick = dict(size, search_max_steps=min(size["search_max_steps"], 4),
                     search_refine=0)

        def step(rate):
            run = bench.load_run(manykeys_args(size, rate), replicas=2,
                                 warmup=size["step_warmup"],
                                 duration=size["step_duration"] / 2)
            return step_figures(run, rate, size["manykeys_batch"],
                                manykeys_per_change(size), MANYKEYS_P99_MS)
        _, best = rising_rate(step, size["manykeys_start_rate"], quick)
        capacity = best["rate"] if best else size["manykeys_start_rate"] / 4
        ctx.found["manykeys_capacity"] = capacity
    per_change = manykeys_per_change(size)
    for share in size["cross_levels"]:
        rate = max(capacity * share, size["cross_min_rate"])
        run = bench.load_run(manykeys_args(size, rate), replicas=2,
                             clients_on=[0], notify_on=[1],
                             warmup=size["step_warmup"],
                             duration=size["cross_duration"])
        f = step_figures(run, rate, size["manykeys_batch"], per_change,
                         CROSS_P99_MS)
        f["level"] = f"{share:.0%}"
        levels.append(f)
    rtt = (ctx.calibration.get("nats_rtt") or {}).get("rtt_us") or {}
    rows = []
    for f in levels:
        lat = f["latency_ms"]
        r50 = lat["p50"] / (rtt["p50"] / 1000) if rtt.get("p50") else None
        r99 = lat["p99"] / (rtt["p99"] / 1000) if rtt.get("p99") else None
        measure = ("cross-replica, one Notify at a time (floor): "
                   if f["level"] == "floor" else
                   f"cross-replica at {f['level']} of capacity "
                   f"({fmt_rate(f['rate'])} changes/s): ")
        r = row(measure + "p50 / p90 / p99 / p99.9 / max",
                " / ".join(fmt_ms(lat[q]) for q in
                           ("p50", "p90", "p99", "p999", "max")),
                ratio=(f"p50 {r50:.1f}x, p99 {r99:.1f}x NATS RTT"
                       if r50 and r99 else ""))
        if f["level"] == "50%":
            r.update(target=f"p50 <= {CROSS_P50_MS:g} ms, p99 <= "
                            f"{CROSS_P99_MS:g} ms",
                     met=(lat["count"] > 0 and lat["p50"] <= CROSS_P50_MS
                          and lat["p99"] <= CROSS_P99_MS))
        rows.append(r)
    return {"summary": {"capacity_changes_per_second": capacity,
                        "levels": levels},
            "rows": rows, "notes": notes}


# 5. Coalescing and slow consumers.

def coalescing(ctx):
    bench, size = ctx.bench, ctx.size
    rows, notes = [], []
    n = size["burst_size"]
    burst_run = bench.load_run([
        f"--connections={size['burst_connections']}", "--keys_per_stream=1",
        "--key_space=1", "--notify_key=0", f"--burst={n}",
        f"--burst_every={size['burst_every'] * 1000:g}ms",
        f"--resolve_delay={size['burst_resolve_delay'] * 1000:g}ms",
    ], replicas=2, warmup=0.0, duration=size["burst_duration"])
    res = burst_run["result"]
    bursts = res.get("notifies_sent", 0) / n if n else 0
    per_replica = [metric(r, "entitysync_resolves_total")
                   for r in burst_run["replicas"]]
    calls_per_burst = [c / bursts if bursts else None for c in per_replica]
    lat = latency_ms(res)
    burst = {
        "bursts": bursts, "notifies_per_burst": n,
        "resolve_delay_ms": size["burst_resolve_delay"] * 1000,
        "resolves_by_replica": per_replica,
        "resolver_calls_per_burst_per_replica": calls_per_burst,
        "resolver_change_calls": calls_by_reason(res, "CHANGE"),
        "calls_by_peer": (res.get("resolver") or {}).get("calls_by_peer"),
        "deliveries": res.get("deliveries"),
        "deliveries_per_burst_per_subscriber":
            res.get("deliveries", 0) / bursts / size["burst_connections"]
            if bursts else None,
        "latency_ms": lat, "raw": burst_run,
    }
    worst = max((c for c in calls_per_burst if c is not None), default=None)
    rows.append(row(
        f"coalescing: bursts of {n} Notifies on one key, resolver "
        f"{burst['resolve_delay_ms']:g} ms, {size['burst_connections']} "
        "subscribers on 2 replicas: resolver calls per burst per replica",
        " / ".join(f"{c:.2f}" for c in calls_per_burst if c is not None)
        + f" (p99 {fmt_ms(lat['p99'])})",
        target=f"<= {BURST_CALLS_PER_REPLICA:g}",
        met=worst is not None and worst <= BURST_CALLS_PER_REPLICA))

    def stall_run(fraction):
        run = bench.load_run([
            f"--connections={size['stall_connections']}",
            f"--keys_per_stream={size['stall_keys_per_stream']}",
            f"--key_space={size['stall_key_space']}",
            f"--stalled_fraction={fraction}",
            f"--row_bytes={size['stall_row_bytes']}",
        ] + loadgen_rate_args(size["stall_rate"], 1), replicas=2,
            warmup=size["stall_warmup"], duration=size["stall_duration"],
            sample_every=1.0 if not ctx.smoke else 0.5)
        # Stalled streams' deliveries are not counted.
        per_change = (size["stall_connections"] * size["stall_keys_per_stream"]
                      / size["stall_key_space"]) * (1 - fraction)
        f = step_figures(run, size["stall_rate"], 1, per_change, 1e9)
        f["stalled_streams"] = run["result"].get("stalled_streams", 0)
        growth = []
        for i, r in enumerate(run["replicas"]):
            start = r.get("rss_notify_start", r["rss_ready"])
            peak = max([r["rss_end"]] + [s["rss"][i]
                                         for s in run["rss_samples"]])
            growth.append(peak - start)
        f["rss_growth"] = growth
        f["slow_consumer_disconnects"] = sum(
            metric(r, "entitysync_slow_consumer_disconnects_total")
            for r in run["replicas"])
        return f

    base = stall_run(0)
    stalled = stall_run(size["stall_fraction"])
    ratio = (stalled["latency_ms"]["p99"] / base["latency_ms"]["p99"]
             if base["latency_ms"]["p99"] else None)
    bound = stalled["stalled_streams"] * SERVER_OUTBOUND_QUEUE_BYTES + 32 * MIB
    growth = max(stalled["rss_growth"])
    rows.append(row(
        f"slow consumers: {size['stall_fraction']:.0%} of "
        f"{size['stall_connections']:,} clients stop reading "
        f"({stalled['stalled_streams']} streams), "
        f"{fmt_rate(size['stall_rate'])} changes/s of "
        f"{size['stall_row_bytes']}-byte rows: healthy clients' p99",
        f"{fmt_ms(stalled['latency_ms']['p99'])} (baseline "
        f"{fmt_ms(base['latency_ms']['p99'])})",
        ratio=f"{ratio:.2f}x baseline" if ratio else "",
        target=f"<= {STALL_P99_RATIO:g}x baseline",
        met=ratio is not None and ratio <= STALL_P99_RATIO))
    rows.append(row(
        "slow consumers: server RSS growth while stalled (max over replicas); "
        "slow-consumer disconnects",
        f"{fmt_bytes(growth)}; {stalled['slow_consumer_disconnects']:.0f}"
        f" (baseline run: {fmt_bytes(max(base['rss_growth']))})",
        target=f"bounded: <= stalled streams x "
               f"{SERVER_OUTBOUND_QUEUE_BYTES // MIB} MiB + 32 MiB",
        met=growth <= bound))
    notes.append(f"Slow consumers: rows of {size['stall_row_bytes']} bytes, "
                 "so that a stalled stream's HTTP/2 window fills within the "
                 "run at a rate the healthy clients can take.")
    notes.append("Memory bound: each stalled stream may hold one outbound "
                 "queue (--max_outbound_queue_bytes, 4 MiB by default) before "
                 "it is closed; 32 MiB of slack covers allocator noise.")
    return {"summary": {"burst": burst, "stall_baseline": base,
                        "stalled": stalled, "healthy_p99_ratio": ratio,
                        "rss_bound": bound},
            "rows": rows, "notes": notes}


# Resolve modes: per_replica (default) against CLUSTER_ONCE.

def resolvemode(ctx):
    bench, size = ctx.bench, ctx.size
    modes = {"per_replica": None, "cluster_once": "CLUSTER_ONCE"}
    points = {m: [] for m in modes}
    unavailable = {}
    for mode, field in modes.items():
        for n in size["mode_replicas"]:
            conns = size["mode_connections_per_replica"] * n
            keys = size["mode_keys"]
            try:
                run = bench.load_run([
                    f"--connections={conns}", f"--keys_per_stream={keys}",
                    f"--key_space={keys}",
                ] + loadgen_rate_args(size["mode_rate"], 1), replicas=n,
                    resolve_mode=field, warmup=0.0,
                    duration=size["mode_duration"])
            except ReplicaConfigRejected as e:
                unavailable[mode] = str(e).splitlines()[-1][:300]
                break
            res = run["result"]
            changes = res.get("changes_sent", 0)
            calls = calls_by_reason(res, "CHANGE")
            keys_resolved = sum(metric(r, "entitysync_resolved_keys_total")
                                for r in run["replicas"])
            resolves = sum(metric(r, "entitysync_resolves_total")
                           for r in run["replicas"])
            points[mode].append({
                "replicas": n, "changes": changes,
                "resolver_change_calls": calls,
                "calls_per_change": calls / changes if changes else None,
                "resolved_keys_per_change":
                    keys_resolved / changes if changes else None,
                "replica_resolves_per_change":
                    resolves / changes if changes else None,
                "deliveries": res.get("deliveries"),
                "latency_ms": latency_ms(res),
                "raw": run,
            })
    notes = [
        "Every replica has subscribers of every key (each stream "
        f"subscribes all {size['mode_keys']} keys); {size['mode_rate']} "
        "changes/s, one key per Notify. Calls per change: CHANGE-reason "
        "Resolve calls at the loadgen's resolver over changes sent."]
    for name in ("resolves_total", "resolved_keys_total"):
        field = {"resolves_total": "replica_resolves_per_change",
                 "resolved_keys_total": "resolved_keys_per_change"}[name]
        if any(p["resolver_change_calls"] and not p[field]
               for p in points["cluster_once"]):
            notes.append(f"With CLUSTER_ONCE the replicas' entitysync_{name} "
                         "stayed at 0 although the resolver was called: "
                         "/metrics does not count those resolves.")
    rows = []
    for mode in modes:
        if mode in unavailable:
            rows.append(row(f"resolve mode {mode}: resolver calls per change",
                            "unavailable: the replica rejects "
                            f"`resolve_mode: {modes[mode]}`"))
            continue
        rows.append(row(
            f"resolve mode {mode}: resolver calls per change with "
            + ", ".join(str(p["replicas"]) for p in points[mode])
            + " replicas",
            ", ".join(f"{p['calls_per_change']:.2f}" if p["calls_per_change"]
                      is not None else "-" for p in points[mode])))
    return {"summary": {"points": points, "unavailable": unavailable},
            "rows": rows, "notes": notes}


# 7. Browsers on the replica: WebSocket connections (the hosted gateway's
# in-replica transport) beside gRPC streams, and the write floor.

def write_floor(ctx, connections, rate):
    """bench/floor/tcp_write_floor: one write per connection per change on
    loopback TCP, the writer's CPU per write (the floor of a transport that
    writes one frame per delivery)."""
    bench, size = ctx.bench, ctx.size
    child = bench.children.start("tcp_write_floor", [
        bench.write_floor_bin, f"--connections={connections}",
        f"--rate={rate:g}", f"--warmup={size['step_warmup']:g}s",
        f"--duration={size['step_duration']:g}s"], capture_stdout=True)
    return bench.finish_loadgen(
        child, 60 + size["step_warmup"] + size["step_duration"]
        + connections / 150)


def websocket(ctx):
    bench, size = ctx.bench, ctx.size
    hold, settle = size["idle_hold"], size["idle_settle"]
    keys = size["ws_idle_keys"]
    idle_runs, rows = [], []

    def idle_point(transport, n, k):
        run = bench.idle_run([
            f"--connections={n}", "--streams_per_connection=1",
            # The same n keys with k subscriptions per connection: the
            # extra ones cost subscriptions, not new keys.
            f"--keys_per_stream={k}", f"--key_space={n}",
        ], hold=hold, settle=settle, transport=transport)
        rep, res = run["replicas"][0], run["result"]
        f = {"transport": transport, "connections": n, "keys": k,
             "streams": res.get("streams"),
             "subscriptions": res.get("subscriptions"),
             "rss_delta": rep["rss_hold"] - rep["rss_base"],
             "idle_cpu_percent": 100.0 * rep["cpu_hold_seconds"]
                                 / max(rep["hold_seconds"], 1e-9),
             "subscribe_errors": res.get("subscribe_errors", 0)}
        f["rss_per_connection"] = f["rss_delta"] / n
        if f["streams"] != n:
            raise BenchError(f"websocket idle: {f['streams']} of {n} "
                             f"{transport} connections ready")
        log(f"  idle {transport}, {n:,} connections x {k} keys: "
            f"{fmt_bytes(f['rss_per_connection'])} per connection")
        idle_runs.append(f)
        return f

    idle_summary = []
    for n in size["ws_idle_connections"]:
        ws1 = idle_point("websocket", n, 1)
        wsk = idle_point("websocket", n, keys)
        grpc1 = idle_point("grpc", n, 1)
        extra = (wsk["rss_delta"] - ws1["rss_delta"]) / max(
            (wsk["subscriptions"] or n * keys) - (ws1["subscriptions"] or n), 1)
        largest = n == size["ws_idle_connections"][-1]
        idle_summary.append({
            "connections": n,
            "websocket_bytes_per_connection": ws1["rss_per_connection"],
            "websocket_extra_subscription_bytes": extra,
            "grpc_bytes_per_stream": grpc1["rss_per_connection"]})
        rows.append(row(
            f"websocket idle, {n:,} connections, one subscription each: "
            "replica RSS per connection (gRPC streams, own connection each, "
            "same run)",
            f"{fmt_bytes(ws1['rss_per_connection'])} "
            f"(gRPC {fmt_bytes(grpc1['rss_per_connection'])})",
            ratio=f"{ws1['rss_per_connection'] / grpc1['rss_per_connection']:.2f}x gRPC's"
            if grpc1["rss_per_connection"] > 0 else "",
            target=f"<= {WS_IDLE_BYTES // KB} KB" if largest else "",
            met=ws1["rss_per_connection"] <= WS_IDLE_BYTES if largest else None))
        rows.append(row(
            f"websocket idle, {n:,} connections x {keys} subscriptions: RSS "
            "per connection; per extra subscription",
            f"{fmt_bytes(wsk['rss_per_connection'])}; {fmt_bytes(extra)}",
            target=f"<= {WS_EXTRA_SUBSCRIPTION_BYTES} B" if largest else "",
            met=extra <= WS_EXTRA_SUBSCRIPTION_BYTES if largest else None))

    fanout_summary = []
    for subs in size["ws_fanout_subscribers"]:
        by_transport = {}
        for transport in ("websocket", "grpc"):
            def step(rate, transport=transport):
                run = bench.load_run([
                    f"--connections={subs}", "--keys_per_stream=1",
                    "--key_space=1", "--notify_key=0",
                ] + loadgen_rate_args(rate, 1), replicas=1,
                    transport=transport, warmup=size["step_warmup"],
                    duration=size["step_duration"])
                return step_figures(run, rate, 1, subs, FANOUT_P99_MS)
            log(f"  fan-out, {subs:,} {transport} subscribers, one replica")
            steps, best = rising_rate(
                step, size["fanout_start_deliveries"] / subs, size)
            by_transport[transport] = {"steps": steps, "best": best}
        floor_rate = size["ws_floor_rates"].get(subs, 10)
        floor = write_floor(ctx, subs, floor_rate)
        floor_cpu = floor.get("writer_cpu_us_per_write")
        entry = {"subscribers": subs, "write_floor": floor}
        for transport, got in by_transport.items():
            best = got["best"]
            entry[transport] = {
                "best_deliveries_per_second":
                    best["deliveries_per_second"] if best else None,
                "best_rate": best["rate"] if best else None,
                "p50_ms": best["latency_ms"]["p50"] if best else None,
                "p99_ms": best["latency_ms"]["p99"] if best else None,
                "cpu_us_per_delivery":
                    best["server_cpu_us_per_delivery"] if best else None,
                "steps": got["steps"]}
        fanout_summary.append(entry)
        for transport in ("websocket", "grpc"):
            e = entry[transport]
            cpu = e["cpu_us_per_delivery"]
            is_ws = transport == "websocket"
            rows.append(row(
                f"{transport} fan-out, {subs:,} subscribers of one key on one "
                f"replica: deliveries/s with p99 <= {FANOUT_P99_MS:g} ms "
                "(Notify rate, p50/p99); server CPU per delivery",
                (f"{fmt_rate(e['best_deliveries_per_second'])}/s "
                 f"({e['best_rate']:g}/s, p50 {fmt_ms(e['p50_ms'])}, p99 "
                 f"{fmt_ms(e['p99_ms'])}); "
                 + (f"{cpu:.2f} us" if cpu is not None else "-"))
                if e["best_rate"] is not None else "no rate met it",
                ratio=(f"{cpu / floor_cpu:.2f}x the write floor "
                       f"({floor_cpu:.2f} us per write at {subs:,} "
                       f"connections, {floor_rate:g} changes/s)"
                       if cpu and floor_cpu else ""),
                target=f"<= {WS_CPU_VS_FLOOR:g}x the write floor"
                       if is_ws else "",
                met=(cpu / floor_cpu <= WS_CPU_VS_FLOOR
                     if cpu and floor_cpu else False) if is_ws else None))
    return {
        "summary": {"idle": idle_summary, "fanout": fanout_summary},
        "runs": idle_runs, "rows": rows, "notes": [
            "One replica (nats bus) hosting the browser gateway "
            "(--gateway_address); the loadgen's WebSocket client "
            "(bench/ws_load, Boost.Beast, --transport=websocket) opens one "
            "WebSocket per subscriber in the binary protocol "
            "(entitysync.v1.proto) and measures exactly as its gRPC streams "
            "do; the gRPC rows are the same loadgen with one Subscribe stream "
            "per connection to the same replica, in the same run. RSS per "
            "connection = (RSS with the connections open - RSS with nothing "
            "connected) / connections.",
            "The write floor (bench/floor/tcp_write_floor) writes one "
            "100-byte message per change to each of N loopback TCP "
            "connections (TCP_NODELAY) while another process reads them: the "
            "writer's CPU per write, which includes the loopback receive "
            "work the kernel charges to the sender."]}


SCENARIOS = {
    "idle": idle,
    "fanout": fanout,
    "manykeys": manykeys,
    "crossreplica": crossreplica,
    "coalescing": coalescing,
    "resolvemode": resolvemode,
    "websocket": websocket,
}
