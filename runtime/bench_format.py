"""rt-bench's reports as text: the console table, Markdown and the latency plot.

A library (rt-bench prints these; benchmarks/ builds BENCHMARKS.md from the same lines), so
that every report of a measurement reads the same wherever it is printed.
"""
from runtime import bench
from runtime.jsonfile import write_bytes_atomic

STAT_COLUMNS = ("min", "mean", "p50", "p90", "p95", "p99", "max")


def _num(value, digits=2):
    return "-" if value is None else "{:.{}f}".format(value, digits)


def format_console(rep):
    """The human report: latency table, stages, what each call includes, environment."""
    s = rep["settings"]
    amount = ("{} calls".format(s["iterations"]) if s.get("iterations")
              else "{:g} s".format(s["duration_s"]))
    warm = ("{} call(s)".format(s["warmup_iters"]) if s.get("warmup_iters")
            else "{:g} s".format(s["warmup_s"]))
    lines = ["rt-bench: {} runner(s), {} per runner in {} interleaved rounds, after {} warm-up; "
             "{} CPU threads".format(len(rep["runners"]), amount, s["rounds"], warm, s.get("threads"))]
    width = max([len(e["name"]) for e in rep["runners"]] + [16])
    header = "{:<{w}} {:>6} ".format("latency ms", "calls", w=width) + " ".join(
        "{:>8}".format(c) for c in STAT_COLUMNS) + " {:>7} {:>6} {:>8} {:>8}".format(
        "std", "cv", "FPS", "x first")
    lines += ["", header]
    for e in rep["runners"]:
        st = e["latency_ms"]
        lines.append("{:<{w}} {:>6} ".format(e["name"], st["count"], w=width) + " ".join(
            "{:>8}".format(_num(st[c])) for c in STAT_COLUMNS) + " {:>7} {:>6} {:>8} {:>8}".format(
            _num(st["std"]), _pct(st["cv"]), _num(e["throughput_fps"], 1),
            _num(e["ratio_to_first"]) + "x" if e["ratio_to_first"] else "-"))
    subs = stage_rows(rep["runners"])
    if subs:
        kw = max([len(k) for _, k, _ in subs] + [8])
        lines += ["", "{:<{w}} {:>{kw}} ".format("stages ms", "stage", w=width, kw=kw) + " ".join(
            "{:>8}".format(c) for c in STAT_COLUMNS)]
        for name, key, st in subs:
            lines.append("{:<{w}} {:>{kw}} ".format(name, key, w=width, kw=kw) + " ".join(
                "{:>8}".format(_num(st.get(c), 3)) for c in STAT_COLUMNS))
        lines += ["  " + l for l in stage_notes(rep["runners"])]
    powered = [e for e in rep["runners"] if e.get("power")]
    if powered:
        lines += ["", "power (tegrastats, {}):".format(powered[0]["power"].get("source"))]
        for e in powered:
            p = e["power"]
            lines.append("  {}: {} mW average over {} samples, {} mJ per frame".format(
                e["name"], _num(p["average_mw"], 0), p["samples"], _num(p["energy_per_frame_mj"], 1)))
    lines += ["", "each timed call includes:"]
    lines += ["  {}: {}".format(e["name"], e["includes"]) for e in rep["runners"]]
    for run in e2e_runs(rep):
        lines += [""] + format_e2e(run)
    lines += format_stream_ratio(rep)
    lines += ["", "environment:"] + ["  " + l for l in environment_lines(rep["environment"])]
    for note in rep.get("notes") or []:
        lines.append("note: " + note)
    for warning in rep.get("warnings") or []:
        lines.append("WARNING: " + warning)
    return "\n".join(lines)


def _pct(value):
    return "-" if value is None else "{:.1%}".format(value)


def stage_rows(entries):
    """(runner, stage, statistics) rows: a bundle's stages and 'other', then sub-timings."""
    rows = []
    for e in entries:
        stages = e.get("stages")
        if stages:
            for key in stages["order"]:
                rows.append((e["name"], key, stages["latency_ms"][key]))
            if stages.get("other_mean_ms") is not None:
                rows.append((e["name"], "other", {"mean": stages["other_mean_ms"]}))
        for key, st in e["sub_timings_ms"].items():
            rows.append((e["name"], key, st))
    return rows


def stage_notes(entries):
    """One line per forecast bundle: its stages' share of a streamed frame."""
    out = []
    for e in entries:
        stages = e.get("stages")
        mean = e["latency_ms"]["mean"]
        if not stages or not mean:
            continue
        shares = ", ".join("{} {}".format(k, _pct((stages["latency_ms"][k]["mean"] or 0) / mean))
                           for k in stages["order"])
        out.append("{}: {} of a streamed frame; 'other' = ring buffer, concatenation, casts, "
                   "Python between the stages".format(e["name"], shares))
    return out


def e2e_runs(rep):
    """The end-to-end runs of a report (older reports: just ``end_to_end``)."""
    runs = rep.get("end_to_end_runs")
    if runs is None:
        runs = [rep["end_to_end"]] if rep.get("end_to_end") else []
    return runs


def format_stream_ratio(rep):
    """The forecast / plain stream FPS lines (issue 8's target metric)."""
    lines = []
    for pair in rep.get("forecast_stream_ratio") or []:
        lines += ["", "forecast stream FPS / plain stream FPS: {}x ({} {} FPS vs {} {} FPS; "
                  "steady state {}x)".format(
                      _num(pair["fps_ratio"]), pair["forecast"], _num(pair["fps_forecast"], 1),
                      pair["plain"], _num(pair["fps_plain"], 1), _num(pair["fps_steady_ratio"]))]
    return lines


def format_e2e(e2e):
    frames = e2e["frames"]
    lines = ["end to end: {}{} ({} mode, frames {}): {} processed, {} dropped, {} FPS "
             "({} steady)".format(
                 "{} on ".format(e2e["name"]) if e2e.get("name") else "",
                 e2e["video"], e2e.get("mode"),
                 "x".join(str(v) for v in e2e["frame_size"] or []) or "?",
                 frames["processed"], frames["dropped"], _num(e2e["fps"], 1),
                 _num(e2e.get("fps_steady"), 1)),
             "  " + e2e["includes"],
        "  {:<18} {:>8} {:>8} {:>8} {:>8} {:>8}".format("stage ms", "mean", "p50", "p90", "p99", "max")]
    for stage, st in e2e["latency_ms"].items():
        if st.get("count"):
            lines.append("  {:<18} {:>8} {:>8} {:>8} {:>8} {:>8}".format(
                stage, _num(st["mean"]), _num(st["p50"]), _num(st["p90"]), _num(st["p99"]),
                _num(st["max"])))
    forecast = e2e.get("forecast")
    if forecast:
        lat = forecast.get("latency_ms") or {}
        lines.append("  forecast: {} frames forecast, {} warm-up; f2f + decoder {} ms mean; "
                     "frame selection {}".format(
                         forecast["frames_forecast"], forecast["frames_warmup"],
                         _num(lat.get("mean")), forecast.get("frame_selection")))
    power = e2e.get("power")
    if power:
        lines.append("  power: {} mW average, {} mJ per frame".format(
            _num(power["average_mw"], 0), _num(power["energy_per_frame_mj"], 1)))
    return lines


def environment_lines(env):
    """The environment block as lines of text (console and Markdown alike)."""
    host = env.get("host") or {}
    lines = ["CPU: {} ({} cores, {} usable), governor {}, {} threads per CPU runner".format(
        host.get("cpu") or "?", host.get("cores") or "?", host.get("cores_usable") or "?",
        env.get("governor") or "unknown", env.get("threads") or "default")]
    gpus = host.get("gpus") or []
    lines.append("GPU: {}".format(", ".join("{} (driver {})".format(g.get("name"), g.get("driver"))
                                            for g in gpus) if gpus else "none found (nvidia-smi)"))
    ort = env.get("onnxruntime") or {}
    core = env.get("libswiftrt") or {}
    lines.append("{}: {}".format(core.get("version") or "libswiftrt not loaded", ", ".join(
        "{} {}".format(b["name"], b["version"] or ("(not used)" if b["available"] else "(not built in)"))
        for b in core.get("backends") or [])))
    lines.append("ONNX Runtime wheel {} ({}); CUDA {}".format(
        ort.get("version") or "not installed", ", ".join(ort.get("providers") or []) or "-",
        env.get("cuda") or "not found"))
    peers = env.get("peers") or {}
    versions = env.get("versions") or {}
    lines.append("Python {}, numpy {}, OpenCV {}{}".format(
        env.get("python"), versions.get("numpy"), versions.get("opencv"),
        "".join("; {} {}".format(k, v) for k, v in sorted(peers.items()))))
    jetson = host.get("jetson")
    if jetson:
        mode = (jetson.get("nvpmodel") or {}).get("mode")
        lines.append("Jetson: {} ({}), nvpmodel {}, clocks {}".format(
            jetson.get("module") or "?", jetson.get("l4t") or "?", mode or "unknown",
            {True: "locked", False: "NOT locked", None: "unknown"}[jetson.get("clocks_locked")]))
    else:
        lines.append("Jetson: no (module, nvpmodel and clocks apply on a Jetson)")
    for b in env.get("forecast_bundles") or []:
        lines.append("forecast bundle {} ({}, {}): {}".format(
            b.get("name"), b.get("arch"), b.get("precision"), ", ".join(
                "{} {} ({})".format(stage, st.get("precision"), st.get("backend"))
                for stage, st in sorted((b.get("stages") or {}).items(),
                                        key=lambda kv: _stage_index(kv[0])))))
    load = env.get("load_average") or {}
    if load.get("start") or load.get("end"):
        lines.append("load average (1/5/15 min): {} at start, {} at end (> cores: shared, noisy)".format(
            _load(load.get("start")), _load(load.get("end"))))
    lines.append("host: {} ({})".format(host.get("hostname") or "?", host.get("os") or "?"))
    return lines


def _stage_index(name):
    return bench.FORECAST_STAGES.index(name) if name in bench.FORECAST_STAGES else 99


def _load(values):
    return "/".join("{:.1f}".format(v) for v in values) if values else "?"


def format_markdown(rep):
    """The report as Markdown tables."""
    s = rep["settings"]
    out = ["# rt-bench report", "",
           "`{}`".format(" ".join(rep["command"] or ["rt-bench"])), "",
           "{} per runner in {} interleaved rounds after {} warm-up; created {}.".format(
               "{} calls".format(s["iterations"]) if s.get("iterations") else "{:g} s".format(s["duration_s"]),
               s["rounds"], "{} calls".format(s["warmup_iters"]) if s.get("warmup_iters")
               else "{:g} s".format(s["warmup_s"]), rep["created"]), "",
           "| runner | calls | " + " | ".join(STAT_COLUMNS) + " | std | CV | FPS | × first |",
           "|---|" + "---:|" * (len(STAT_COLUMNS) + 5)]
    for e in rep["runners"]:
        st = e["latency_ms"]
        out.append("| {} | {} | {} | {} | {} | {} | {} |".format(
            e["name"], st["count"], " | ".join(_num(st[c]) for c in STAT_COLUMNS), _num(st["std"]),
            _pct(st["cv"]), _num(e["throughput_fps"], 1), _num(e["ratio_to_first"])))
    subs = stage_rows(rep["runners"])
    if subs:
        out += ["", "| runner | stage | " + " | ".join(STAT_COLUMNS) + " |",
                "|---|---|" + "---:|" * len(STAT_COLUMNS)]
        for name, key, st in subs:
            out.append("| {} | {} | {} |".format(
                name, key, " | ".join(_num(st.get(c), 3) for c in STAT_COLUMNS)))
        out += [""] + stage_notes(rep["runners"])
    out += ["", "Latency in ms. What one timed call includes:", ""]
    out += ["- **{}**: {}".format(e["name"], e["includes"]) for e in rep["runners"]]
    runs = e2e_runs(rep)
    if runs:
        out += ["", "```"]
        for i, run in enumerate(runs):
            out += ([""] if i else []) + format_e2e(run)
        out += format_stream_ratio(rep) + ["```"]
    out += ["", "Environment:", ""] + ["- " + l for l in environment_lines(rep["environment"])]
    for note in rep.get("notes") or []:
        out.append("- note: " + note)
    for warning in rep.get("warnings") or []:
        out.append("- **warning**: " + warning)
    return "\n".join(out) + "\n"


def plot(rep, samples, path):
    """Latency distribution per runner (box: p1..p99) and stage bars (matplotlib, lazily)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = e2e_runs(rep)
    e2e = runs[0] if runs else None
    subs = stage_rows(rep["runners"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 1.5 + 0.6 * max(3, len(samples))))
    names = [e["name"] for e in rep["runners"]]
    data = [samples[n] for n in names]
    style = dict(whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
    try:
        left.boxplot(data, orientation="horizontal", **style)  # matplotlib >= 3.10
    except TypeError:
        left.boxplot(data, vert=False, **style)
    left.set_yticks(range(1, len(names) + 1))
    left.set_yticklabels(names)
    left.set_xlabel("latency per call (ms); box: p25-p75, whiskers: p1-p99")
    left.set_title("latency distribution")
    left.invert_yaxis()  # the first (reference) runner on top
    if e2e:
        stages = [("{} {}".format(run["name"], k) if len(runs) > 1 else k, v["mean"])
                  for run in runs for k, v in run["latency_ms"].items() if v.get("count")]
        right.barh([k for k, _ in stages], [v for _, v in stages])
        right.set_title("end to end: mean ms per stage ({} FPS)".format(_num(e2e["fps"], 1))
                        if len(runs) == 1 else "end to end: mean ms per stage")
    elif subs:
        right.barh(["{} {}".format(name, key) for name, key, _ in subs],
                   [st["mean"] or 0.0 for _, _, st in subs])
        right.set_title("stages: mean ms")
    else:
        right.barh(names, [e["latency_ms"]["mean"] for e in rep["runners"]])
        right.set_title("mean latency (ms)")
    right.invert_yaxis()
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return path


def format_backends(table):
    """``rt-bench --list-backends``: libswiftrt's backends (runtime.backends.capabilities as dicts)
    as a table: compiled in or not, version once an engine opened, files, options, what a call covers."""
    rows = [("backend", "compiled in", "version", "runs", "options", "one call")]
    rows += [(b["name"], "yes" if b["available"] else "no", b["version"] or "-", " ".join(b["files"]),
              ", ".join(b["options"]), b["includes"]) for b in table]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1]
                     for r in rows)
