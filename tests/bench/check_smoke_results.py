#!/usr/bin/env python3
"""Checks the results of `bench/run --smoke` (see bench_smoke_test.sh).

Usage: check_smoke_results.py OUT_DIR. The calibration must have measured the
raw gRPC streaming limit, the raw gRPC fan-out (steps with messages,
latency samples and server CPU) and the NATS round trip; every scenario must
have run without error and produced its figures: deliveries and latency samples where clients
receive updates, memory and fds for the idle footprint, resolver calls for
the coalescing and resolve-mode scenarios, rows for the table, and the PNG
plots when gnuplot is installed. Whether targets were met is not checked.
"""

import glob
import json
import os
import shutil
import sys

SCENARIOS = ["idle", "fanout", "manykeys", "crossreplica", "coalescing",
             "resolvemode", "websocket"]
PLOTS = ["fanout", "manykeys", "crossreplica", "memory", "resolvemode"]

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_step(where, step):
    """A measurement in which clients received updates."""
    check(number(step.get("deliveries")) and step["deliveries"] > 0,
          f"{where}: no deliveries ({step.get('deliveries')})")
    lat = step.get("latency_ms") or {}
    check(number(lat.get("count")) and lat["count"] > 0,
          f"{where}: no latency samples")
    for q in ("p50", "p90", "p99", "p999", "max"):
        check(number(lat.get(q)) and lat[q] >= 0,
              f"{where}: latency {q} missing ({lat.get(q)})")
    if number(lat.get("p50")) and number(lat.get("p99")) \
            and number(lat.get("max")):
        check(lat["p50"] <= lat["p99"] <= lat["max"],
              f"{where}: percentiles out of order {lat}")


def main(out_dir):
    files = glob.glob(os.path.join(out_dir, "*.json"))
    if not check(len(files) == 1, f"one results JSON in {out_dir}: {files}"):
        return
    with open(files[0]) as f:
        results = json.load(f)
    check(results.get("smoke") is True, "results not marked smoke")
    date = results.get("date", "")

    cal = results.get("calibration") or {}
    check("error" not in cal, f"calibration failed: {cal.get('error')}")
    limits = (cal.get("summary") or {}).get("grpc_stream_limit") or []
    check(limits and all(number(c.get("messages_per_second"))
                         and c["messages_per_second"] > 0 for c in limits),
          f"raw gRPC streaming limit missing: {limits}")
    cal_rows = cal.get("rows") or []
    check(any(r.get("measure", "").startswith("raw gRPC fan-out")
              for r in cal_rows), "calibration: no raw gRPC fan-out row")
    for r in cal_rows:
        check("{" not in r.get("measure", "") + r.get("figure", ""),
              f"calibration row not formatted: {r}")
    fanouts = (cal.get("summary") or {}).get("grpc_fanout_limit") or []
    check(fanouts, "raw gRPC fan-out calibration missing")
    for c in fanouts:
        where = f"raw gRPC fan-out, {c.get('streams')} streams"
        check(c.get("steps"), f"{where}: no steps")
        for key in ("messages_per_second", "server_cpu_us_per_message",
                    "best_rate", "p99_ms"):
            check(key in c, f"{where}: {key} missing")
        for st in c.get("steps") or []:
            check_step(f"{where} at {st.get('rate')}/s", st)
            check(number(st.get("messages_per_second"))
                  and st["messages_per_second"] > 0,
                  f"{where} at {st.get('rate')}/s: no messages/s")
            check(number(st.get("server_cpu_us_per_message")),
                  f"{where} at {st.get('rate')}/s: server CPU missing")
    rtt = ((cal.get("summary") or {}).get("nats_rtt") or {}).get("rtt_us") or {}
    check(number(rtt.get("count")) and rtt["count"] > 0
          and number(rtt.get("p50")) and rtt["p50"] > 0,
          f"NATS round trip missing: {rtt}")

    sc = results.get("scenarios") or {}
    for name in SCENARIOS:
        s = sc.get(name)
        if not check(s is not None, f"scenario {name} missing"):
            continue
        if not check("error" not in s, f"{name} failed: {s.get('error')}"):
            continue
        rows = s.get("rows") or []
        check(rows and all(r.get("measure") and r.get("figure")
                           for r in rows), f"{name}: table rows missing")
    if failures:
        return

    idle = sc["idle"]["summary"]
    for kind in ("own_connection", "shared_connection"):
        pts = idle.get(kind) or []
        check(pts, f"idle: no {kind} points")
        for p in pts:
            check(number(p.get("rss_per_stream")),
                  f"idle {kind}: RSS per stream missing")
            check(number(p.get("fds_hold")) and p["fds_hold"] > 0,
                  f"idle {kind}: fds missing")
            check(number(p.get("idle_cpu_percent")),
                  f"idle {kind}: idle CPU missing")
            check(number(p.get("grpc_rss_per_stream")),
                  f"idle {kind}: raw gRPC RSS per stream missing")
    check(number(idle.get("extra_subscription_bytes")),
          "idle: bytes per extra subscription missing")
    for run in sc["idle"].get("runs") or []:
        check(run.get("streams", 0) > 0 and run.get("fds_hold", 0)
              >= run.get("connections", 0),
              f"idle {run.get('label')}: {run.get('fds_hold')} fds for "
              f"{run.get('connections')} connections")

    fanout_rows = sc["fanout"].get("rows") or []
    for e in sc["fanout"]["summary"].get("by_subscribers") or []:
        check(e.get("steps"), f"fanout {e.get('subscribers')}: no steps")
        for key in ("ratio_to_grpc_limit", "ratio_to_grpc_fanout_limit",
                    "grpc_fanout_limit_messages_per_second",
                    "grpc_fanout_server_cpu_us_per_message",
                    "ratio_to_grpc_cq_fanout_limit",
                    "grpc_cq_fanout_limit_messages_per_second",
                    "grpc_cq_fanout_server_cpu_us_per_message"):
            check(key in e, f"fanout {e.get('subscribers')}: {key} missing")
        if number(e.get("best_deliveries_per_second")) \
                and number(e.get("grpc_fanout_limit_messages_per_second")):
            check(number(e.get("ratio_to_grpc_fanout_limit")),
                  f"fanout {e['subscribers']}: no ratio to raw gRPC fan-out")
            for api in ("callback", "completion-queue"):
                check(any(f"raw {api} gRPC fan-out" in (r.get("ratio") or "")
                          for r in fanout_rows),
                      f"fanout: no row states the ratio to raw {api} gRPC "
                      "fan-out")
        for st in e.get("steps") or []:
            check_step(f"fanout {e['subscribers']} at {st.get('rate')}/s", st)
            check(number(st.get("server_cpu_us_per_delivery")),
                  "fanout: CPU per delivery missing")
    check(sc["fanout"]["summary"].get("by_subscribers"), "fanout: no runs")

    mk = sc["manykeys"]["summary"]
    check(mk.get("steps"), "manykeys: no steps")
    for st in mk.get("steps") or []:
        check_step(f"manykeys at {st.get('rate')}/s", st)
    churn = mk.get("churn") or {}
    check_step("manykeys churn", churn)
    check(number(churn.get("resolver_calls_per_change")),
          "manykeys churn: resolver calls per change missing")

    levels = sc["crossreplica"]["summary"].get("levels") or []
    check(len(levels) >= 2, f"crossreplica: {len(levels)} levels")
    for lv in levels:
        check_step(f"crossreplica {lv.get('level')}", lv)

    co = sc["coalescing"]["summary"]
    burst = co.get("burst") or {}
    check(number(burst.get("bursts")) and burst["bursts"] > 0,
          "coalescing: no bursts sent")
    calls = burst.get("resolver_calls_per_burst_per_replica") or []
    check(len(calls) == 2 and all(number(c) for c in calls),
          f"coalescing: resolver calls per burst per replica: {calls}")
    check(number(burst.get("deliveries")) and burst["deliveries"] > 0,
          "coalescing: bursts delivered nothing")
    check_step("coalescing baseline", co.get("stall_baseline") or {})
    check_step("coalescing stalled", co.get("stalled") or {})
    check((co.get("stalled") or {}).get("stalled_streams", 0) > 0,
          "coalescing: no stalled streams")
    check(number(co.get("healthy_p99_ratio")),
          "coalescing: healthy p99 ratio missing")

    rm = sc["resolvemode"]["summary"]
    per = (rm.get("points") or {}).get("per_replica") or []
    check(len(per) >= 2, f"resolvemode per_replica: {len(per)} points")
    for p in per:
        check(number(p.get("calls_per_change")) and p["calls_per_change"] > 0,
              f"resolvemode per_replica {p.get('replicas')} replicas: "
              f"{p.get('calls_per_change')} calls per change")
    once = (rm.get("points") or {}).get("cluster_once") or []
    check(once or "cluster_once" in (rm.get("unavailable") or {}),
          "resolvemode cluster_once neither measured nor marked unavailable")

    ws = sc["websocket"]["summary"]
    for p in ws.get("idle") or [None]:
        check(p and number(p.get("websocket_bytes_per_connection"))
              and p["websocket_bytes_per_connection"] > 0
              and number(p.get("grpc_bytes_per_stream")),
              f"websocket idle point missing or empty: {p}")
    for e in ws.get("fanout") or [None]:
        if not check(e, "websocket fan-out missing"):
            continue
        for transport in ("websocket", "grpc"):
            for i, st in enumerate((e.get(transport) or {}).get("steps")
                                   or [None]):
                if check(st, f"websocket fan-out {transport}: no steps"):
                    check_step(f"websocket fan-out {transport} step {i}", st)
        floor = e.get("write_floor") or {}
        check(number(floor.get("writer_cpu_us_per_write"))
              and floor["writer_cpu_us_per_write"] > 0,
              f"write floor missing: {floor}")

    if shutil.which("gnuplot") or os.path.exists("/usr/bin/gnuplot"):
        for name in PLOTS:
            path = os.path.join(out_dir, f"{date}-{name}.png")
            ok = os.path.exists(path)
            if ok:
                with open(path, "rb") as f:
                    ok = f.read(8) == b"\x89PNG\r\n\x1a\n"
            check(ok, f"plot {path} missing or not a PNG")


if __name__ == "__main__":
    main(sys.argv[1])
    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print("PASS: every scenario ran and produced well-formed results")
