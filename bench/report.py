"""What a benchmark run leaves behind: the JSON file, PNG plots (gnuplot)
and the results table in bench/README.md (between two marker lines).
"""

import json
import os
import shutil
import subprocess
import tempfile

README_BEGIN = "<!-- bench:results:begin -->"
README_END = "<!-- bench:results:end -->"


def strip_raw(value):
    """The README and stdout table need no raw runs; JSON keeps them."""
    if isinstance(value, dict):
        return {k: strip_raw(v) for k, v in value.items() if k != "raw"}
    if isinstance(value, list):
        return [strip_raw(v) for v in value]
    return value


def merge_previous(path, results):
    """Keeps the scenarios of an earlier (non-smoke) run of the same day that
    this run did not repeat; each scenario says when it ran."""
    if not os.path.exists(path):
        return results
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return results
    if old.get("smoke") or results.get("smoke"):
        return results
    kept = {k: v for k, v in (old.get("scenarios") or {}).items()
            if k not in results["scenarios"]}
    results["scenarios"] = dict(kept, **results["scenarios"])
    return results


def write_json(path, results):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


# Table.

def table_rows(results, order):
    rows = []
    cal = results.get("calibration") or {}
    for r in cal.get("rows", []):
        rows.append(("calibration", r))
    for name in order:
        s = results["scenarios"].get(name)
        if s is None:
            continue
        if "error" in s:
            lines = [x for x in s["error"].splitlines() if x.strip()] or ["?"]
            first = lines[-1] if lines[0].startswith("Traceback") else lines[0]
            rows.append((name, {"measure": "run failed", "figure":
                                first[:160], "ratio": "", "target": "",
                                "met": None}))
            continue
        for r in s.get("rows", []):
            rows.append((name, r))
    return rows


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(results, order):
    lines = ["| scenario | measure | figure | ratio | target | met |",
             "|---|---|---|---|---|---|"]
    for name, r in table_rows(results, order):
        met = {True: "yes", False: "**no**", None: ""}[r.get("met")]
        lines.append("| " + " | ".join(_cell(c) for c in (
            name, r["measure"], r["figure"], r.get("ratio", ""),
            r.get("target", ""), met)) + " |")
    return "\n".join(lines)


def notes(results, order):
    out = []
    for name in order:
        s = results["scenarios"].get(name) or {}
        for n in s.get("notes", []):
            out.append(f"- {name}: {n}")
    return out


# Plots.

def _terminal():
    try:
        out = subprocess.run(["gnuplot", "-e", "set terminal"],
                             capture_output=True, text=True, timeout=20)
        text = out.stdout + out.stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    if "pngcairo" in text:
        return "pngcairo size 900,560 font ',10'"
    if " png " in text or "png " in text:
        return "png size 900,560"
    return None


def _series_fanout(s):
    series = []
    for e in s["summary"]["by_subscribers"]:
        pts = [(st["offered_deliveries_per_second"], st["latency_ms"]["p99"])
               for st in e["steps"] if st["latency_ms"]["p99"]]
        series.append((f"{e['subscribers']:,} subscribers", pts))
    # The raw gRPC fan-out calibration at the same subscriber counts.
    for e in s["summary"]["by_subscribers"]:
        pts = [tuple(p) for p in e.get("grpc_fanout_points") or []]
        if pts and e.get("grpc_fanout_streams") == e["subscribers"]:
            series.append((f"raw gRPC fan-out, {e['subscribers']:,} streams",
                           pts))
    return series


def _series_manykeys(s):
    steps = s["summary"]["steps"]
    return [
        ("p99", [(st["rate"], st["latency_ms"]["p99"]) for st in steps
                 if st["latency_ms"]["p99"]]),
        ("p50", [(st["rate"], st["latency_ms"]["p50"]) for st in steps
                 if st["latency_ms"]["p50"]]),
    ]


def _series_memory(s):
    own = s["summary"]["own_connection"]
    shared = s["summary"]["shared_connection"]
    return [
        ("own connection per stream",
         [(p["streams"], p["rss_per_stream"] / 1024) for p in own]),
        (f"{shared[0]['streams'] // max(shared[0]['connections'], 1)} "
         "streams per connection" if shared else "shared connection",
         [(p["streams"], p["rss_per_stream"] / 1024) for p in shared]),
        # The floor: raw gRPC holding the same idle streams.
        ("raw gRPC, own connection",
         [(p["streams"], p["grpc_rss_per_stream"] / 1024) for p in own
          if p.get("grpc_rss_per_stream")]),
        ("raw gRPC, shared connection",
         [(p["streams"], p["grpc_rss_per_stream"] / 1024) for p in shared
          if p.get("grpc_rss_per_stream")]),
    ]


def _series_resolvemode(s):
    pts = s["summary"]["points"]
    return [(mode, [(p["replicas"], p["calls_per_change"]) for p in pts[mode]
                    if p["calls_per_change"] is not None])
            for mode in ("per_replica", "cluster_once")]


def _series_coalescing(s):
    out = []
    for label, key in (("baseline", "stall_baseline"), ("1% stalled", "stalled")):
        run = s["summary"][key]["raw"]
        out.append((label, [(p["t"], sum(p["rss"]) / 1048576)
                            for p in run["rss_samples"]]))
    return out


PLOTS = [
    # name, scenario, series fn, title, xlabel, ylabel, log x, log y, extra
    ("fanout", "fanout", _series_fanout,
     "Single-key fan-out over 2 replicas (dashed: raw gRPC fan-out): p99 "
     "vs offered load",
     "offered deliveries per second", "p99 latency (ms)", True, True,
     ["50 with lines dashtype 2 title 'p99 limit 50 ms'"]),
    ("manykeys", "manykeys", _series_manykeys,
     "Many keys (1,000 clients x 10 keys, 2 replicas): latency vs Notify rate",
     "changes notified per second", "latency (ms)", True, True,
     ["10 with lines dashtype 2 title 'p99 limit 10 ms'"]),
    ("memory", "idle", _series_memory,
     "Idle footprint: server RSS per subscribed stream",
     "streams", "RSS per stream (KiB)", True, False,
     ["15 with lines dashtype 2 title 'target, own connection'",
      "2 with lines dashtype 3 title 'target, shared connection'"]),
    ("resolvemode", "resolvemode", _series_resolvemode,
     "Resolver calls per change by resolve mode",
     "replicas", "resolver calls per change", False, False, []),
    ("coalescing", "coalescing", _series_coalescing,
     "Server RSS (both replicas) while 1% of clients stall",
     "seconds after READY", "RSS (MiB)", False, False, []),
]


def _quote(s):
    return "'" + str(s).replace("'", "''") + "'"


def plot_all(results, out_dir, date):
    """Writes <out_dir>/<date>-<name>.png; returns {name: file name}."""
    if shutil.which("gnuplot") is None:
        return {}, ["gnuplot not found (Debian package gnuplot-nox): no plots"]
    term = _terminal()
    if term is None:
        return {}, ["gnuplot has no png terminal: no plots"]
    written, problems = {}, []
    work = tempfile.mkdtemp(prefix="bench-plots-")
    try:
        for name, scen, fn, title, xl, yl, logx, logy, extra in PLOTS:
            s = results["scenarios"].get(scen)
            if not s or "error" in s:
                continue
            try:
                series = [(label, pts) for label, pts in fn(s) if pts]
            except (KeyError, TypeError, IndexError, ZeroDivisionError) as e:
                problems.append(f"plot {name}: {e!r}")
                continue
            if not series:
                continue
            target = os.path.join(out_dir, f"{date}-{name}.png")
            if _plot_lines(work, name, series, target, term, title, xl, yl,
                           logx and _positive(series, 0),
                           logy and _positive(series, 1), extra, problems):
                written[name] = os.path.basename(target)
        cross = results["scenarios"].get("crossreplica")
        if cross and "error" not in cross:
            target = os.path.join(out_dir, f"{date}-crossreplica.png")
            if _plot_levels(work, cross["summary"]["levels"], target, term,
                            problems):
                written["crossreplica"] = os.path.basename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return written, problems


def _positive(series, axis):
    return all(p[axis] > 0 for _, pts in series for p in pts)


def _run_gnuplot(work, name, script, problems):
    path = os.path.join(work, f"{name}.gp")
    with open(path, "w") as f:
        f.write(script)
    try:
        out = subprocess.run(["gnuplot", path], cwd=work, capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        problems.append(f"plot {name}: {e!r}")
        return False
    if out.returncode != 0:
        problems.append(f"plot {name}: gnuplot: {out.stderr.strip()[:300]}")
        return False
    return True


def _plot_lines(work, name, series, target, term, title, xlabel, ylabel,
                logx, logy, extra, problems):
    plots = []
    for i, (label, pts) in enumerate(series):
        dat = os.path.join(work, f"{name}-{i}.dat")
        with open(dat, "w") as f:
            for x, y in sorted(pts):
                f.write(f"{x} {y}\n")
        # Calibration series (raw gRPC) dashed, the service's solid.
        dashed = " dashtype 2" if label.startswith("raw ") else ""
        plots.append(f"{_quote(dat)} using 1:2 with linespoints lw 2 pt 7"
                     f"{dashed} title {_quote(label)}")
    plots += extra
    script = "\n".join([
        f"set terminal {term}",
        f"set output {_quote(target)}",
        f"set title {_quote(title)}",
        f"set xlabel {_quote(xlabel)}",
        f"set ylabel {_quote(ylabel)}",
        "set grid",
        "set key top left",
        "set logscale x" if logx else "",
        "set logscale y" if logy else "set yrange [0:*]",
        "plot " + ", \\\n  ".join(plots),
        "",
    ])
    return _run_gnuplot(work, name, script, problems)


def _plot_levels(work, levels, target, term, problems):
    dat = os.path.join(work, "cross.dat")
    qs = ("p50", "p90", "p99", "p999", "max")
    with open(dat, "w") as f:
        f.write("level " + " ".join(qs) + "\n")
        for lv in levels:
            lat = lv["latency_ms"]
            if not lat.get("count"):
                continue
            f.write(lv["level"] + " " + " ".join(
                f"{max(lat[q] or 0, 0.001):.4f}" for q in qs) + "\n")
    script = "\n".join([
        f"set terminal {term}",
        f"set output {_quote(target)}",
        "set title 'Cross-replica latency (Notify on replica 1, clients on "
        "replica 0) per load level'",
        "set ylabel 'latency (ms)'",
        "set xlabel 'load (share of the many-keys capacity)'",
        "set logscale y",
        "set grid ytics",
        "set style data histogram",
        "set style histogram clustered gap 1",
        "set style fill solid 0.8 border -1",
        "set key top left autotitle columnheader",
        f"plot {_quote(dat)} using 2:xtic(1), '' using 3, '' using 4, "
        "'' using 5, '' using 6, 1 with lines dashtype 2 notitle, "
        "5 with lines dashtype 3 notitle",
        "",
    ])
    return _run_gnuplot(work, "cross", script, problems)


# README.

PLOT_TITLES = {
    "fanout": "fan-out p99 vs offered load",
    "manykeys": "many keys: latency vs rate",
    "crossreplica": "cross-replica latency percentiles per load level",
    "memory": "RSS per stream vs stream count",
    "resolvemode": "resolver calls per change vs replicas",
    "coalescing": "RSS while clients stall",
}


def readme_block(results, order, readme_dir, out_dir):
    rel = os.path.relpath(out_dir, readme_dir)
    date = results["date"]
    ran = sorted({s.get("ran_at", date)
                  for s in results["scenarios"].values()})
    lines = [
        README_BEGIN,
        "",
        f"Run of {date} (`{results['command']}`; scenarios from "
        f"{', '.join(ran)}), {results['host']['cpus']} cores, clients and "
        "servers on this machine, opt binaries. All figures: "
        f"[{rel}/{date}.json]({rel}/{date}.json). A target missed shows "
        "**no**; the run still succeeds.",
        "",
        markdown_table(strip_raw(results), order),
        "",
    ]
    loads = [f"{name} {results['scenarios'][name]['other_cpu_cores']:.2f}"
             for name in order if "other_cpu_cores"
             in (results["scenarios"].get(name) or {})]
    if loads:
        lines += ["CPU used by other processes on the machine while each "
                  "scenario ran, in cores (of 2): " + ", ".join(loads)
                  + ". Above about 0.2, other work competed with the "
                  "benchmark and its figures are pessimistic.", ""]
    n = notes(results, order)
    if n:
        lines += ["How each figure was taken:", ""] + n + [""]
    plots = results.get("plots") or {}
    if plots:
        lines.append("Plots:")
        lines.append("")
        for name in ("fanout", "manykeys", "crossreplica", "memory",
                     "resolvemode", "coalescing"):
            if name in plots:
                lines.append(f"- {PLOT_TITLES[name]}: "
                             f"![{PLOT_TITLES[name]}]({rel}/{plots[name]})")
        lines.append("")
    lines.append(README_END)
    return "\n".join(lines)


def update_readme(path, block):
    with open(path) as f:
        text = f.read()
    if README_BEGIN in text and README_END in text:
        head = text.split(README_BEGIN, 1)[0]
        tail = text.split(README_END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
