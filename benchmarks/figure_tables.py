"""The tables of docs/benchmarks.md, one function per benchmark, each printed from a run (or all
runs) of benchmarks/results/NAME.json. benchmarks/readme_figures.py puts them in place."""

from __future__ import annotations

import statistics


def _f(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def load_cell(run: dict) -> str:
    """'load 0.91 -> 1.09 (not busy)', with BUSY when the load exceeded the cores."""
    before, after = run.get("load_before"), run.get("load_after")
    if not before and not after:
        return "load not recorded"
    one = [f"{v[0]:.2f}" if v else "?" for v in (before, after)]
    busy = run.get("busy")
    flag = "**busy**" if busy else ("not busy" if busy is False else "busy not recorded")
    return f"load {one[0]} -> {one[1]} ({flag})"


def provenance(run: dict) -> str:
    """One italic line: when, where, how loaded, which commit and checkpoint."""
    m = run.get("machine", {})
    gpu = m.get("gpu", "none")
    isa = f" ({m['isa']})" if m.get("isa") else ""  # recorded since 2026-12-07
    where = (f"{m.get('cpu', '?')}{isa}, {m.get('cores', '?')} cores, "
             f"{'no GPU' if gpu == 'none' else gpu}")  # fmt: skip
    ckpt = run.get("checkpoint")
    what = ""
    if isinstance(ckpt, dict):
        sha = ckpt.get("sha256")
        what = f"; checkpoint {ckpt.get('path')}" + (f" (sha256 {sha[:12]})" if sha else "")
    return (f"*{run.get('date', '?')[:10]}, {where}; {load_cell(run)}; commit "
            f"{run.get('git_commit', '?')}{what}.*")  # fmt: skip


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def demo(run: dict) -> str:
    lines = [u["line"] for u in run["utterances"][:4]]
    return "```\n" + "\n".join(lines) + "\n```\n\n" + provenance(run)


def step_latency(run: dict) -> str:
    rows = []
    for key, r in run["results"].items():
        s, f = r["step_ms"], r["forward_ms"]
        rows.append([key.split("=")[1], f"{s['p50']:.2f} / {s['p95']:.2f}",
                     f"{f['p50']:.1f} / {f['p95']:.1f}", f"{r['ratio_p50']:.0f}x"])  # fmt: skip
    d = run["config"]["d_model"]
    return (table(["T (steps)", "step p50 / p95 ms", "forward over T p50 / p95 ms", "ratio"], rows)
            + f"\n\nEager, 1 thread, batch 1, random-init model, d = {d}. " + provenance(run))


def engines(run: dict) -> str:
    rows = []
    for name, per_batch in run["engines"].items():
        for batch, per_setting in per_batch.items():
            r = per_setting.get("threads_1") or per_setting.get("gpu")
            if r is None:
                continue
            x, cx = r["speedup_vs_eager"], r.get("cpu_speedup_vs_eager")
            cpu = r.get("cpu_p50_ms")
            rows.append([name, batch[1:], "1" if "threads_1" in per_setting else "GPU",
                         f"{r['p50_ms']:.3f}", f"{r['p95_ms']:.3f}", f"{r['p99_ms']:.3f}",
                         f"{r['steps_per_s']:.0f}", "-" if x is None else f"{x:.1f}x",
                         "-" if cpu is None else f"{cpu:.3f}",
                         "-" if cx is None else f"{cx:.1f}x"])  # fmt: skip
    text = table(["engine", "B", "threads", "p50 ms", "p95 ms", "p99 ms", "steps/s", "vs eager",
                   "CPU p50 ms", "vs eager (CPU)"], rows) + "\n\n" + provenance(run)  # fmt: skip
    t = run.get("targets") or {}
    if t:
        verdict = "met" if t["met"] else "**missed**"
        text += (f"\n\nTarget (ONNX Runtime, B = 1, 1 thread: p50 < {t['onnx_b1_p50_target_ms']}"
                 f" ms and at least {t['onnx_b1_speedup_target']:.0f}x eager): p50 "
                 f"{t['onnx_b1_p50_ms']:.3f} ms, {t['onnx_b1_speedup_vs_eager']:.2f}x, {verdict}")
        if "met_on_cpu_time" in t:
            text += (f"; on CPU time p50 {t['onnx_b1_cpu_p50_ms']:.3f} ms, "
                     f"{t['onnx_b1_cpu_speedup_vs_eager']:.2f}x, "
                     f"{'met' if t['met_on_cpu_time'] else '**missed**'}")
        text += "."
        if run.get("busy"):
            text += (" The machine was busy (load above its cores), which slows the two engines "
                     "by different factors, so this run's ratios are not a clean measurement; "
                     "compare a quiet run.")
    return text


def _face_row(face: dict, share: float, fps: int) -> list[str]:
    """Runs since 2026-12-07 time the face as live samples it; earlier ones every frame."""
    if "live_cpu_ms_per_frame" not in face:
        return ["face (cascade + expression net)", face["unit"], _f(face["cpu_ms"]),
                f"{share:.2f} at {fps} fps"]  # fmt: skip
    return [f"face (cascade + expression net), {face['live_rate_hz']:g} analyses a second as live "
            f"({_f(face['cpu_ms'])} ms each, full search)", f"{face['unit']} at {fps} fps",
            _f(face["live_cpu_ms_per_frame"]), f"{share:.2f}"]  # fmt: skip


def extractors(run: dict) -> str:
    rows, share = run["rows"], run["cpu_share_cores"]
    asr = rows["asr"]
    cells = [
        _face_row(rows["face"], share["face"], run["camera_fps"]),
        ["voice (eGeMAPS)", rows["voice"]["unit"], _f(rows["voice"]["cpu_ms"]),
         f"{share['voice']:.2f}"],
        ["voice activity (Silero)", rows["vad"]["unit"], _f(rows["vad"]["cpu_ms"], 2),
         f"{share['vad']:.3f}"],
        [f"speech recognition (Whisper base int8, {asr['threads']} threads)", asr["unit"],
         _f(asr["cpu_ms"]), f"{share['asr']:.2f} at {run['speech_fraction']:.0%} speech"],
        [f"word embeddings ({rows['words'].get('encoder', 'encoder not recorded')}"
         f"{', ONNX Runtime' if rows['words'].get('backend') == 'onnx' else ''})", "word",
         _f(rows["words"]["ms_per_word"]), f"{share['words']:.3f}"],
        ["**whole front half**", "", "", f"**{share['total']:.2f}**"],
    ]  # fmt: skip
    # The encoder a checkpoint may name but the shipped one does not (runs since MPNet shipped).
    for r in run.get("words_by_encoder", {}).values():
        if r["encoder"] != rows["words"].get("encoder"):
            scale = share["words"] / rows["words"]["cpu_ms"] * r["cpu_ms"]
            cells.insert(-1, [f"word embeddings ({r['encoder']}, not shipped)", "word",
                              _f(r["ms_per_word"]), f"{scale:.3f} (instead)"])  # fmt: skip
    torch_row = run.get("words_shipped_on_torch")  # runs since the ONNX text back-end
    if torch_row:
        scale = share["words"] / rows["words"]["cpu_ms"] * torch_row["cpu_ms"]
        cells.insert(-1, [f"word embeddings ({torch_row['encoder']}, PyTorch, not live)", "word",
                          _f(torch_row["ms_per_word"]), f"{scale:.3f} (instead)"])  # fmt: skip
    full = run["asr_full_window"]
    by = run["asr_by_threads"]
    rtf = ", ".join(f"{by[k]['rtf']:.3f} with {k} thread{'s' if k != '1' else ''}" for k in by)
    return (table(["extractor", "per", "CPU ms", "share of one core, live"], cells)
            + f"\n\nWhisper's real-time factor (wall): {rtf}; with its full 30 s window "
              f"{full['rtf']:.3f} (same words in {run['asr_same_words_as_full_window']} test "
              "segments). " + provenance(run))  # fmt: skip


def tts_asr(run: dict) -> str:
    rows = [[s["words_per_minute"], s["word_gap_ms"], f"{100 * s['wer']:.1f} %",
             f"{s['negations_lost']} of {s['negations']}"] for s in run["settings"]]  # fmt: skip
    return (table(["words a minute", "gap between words", "word error rate", "negations lost"],
                   rows)  # fmt: skip
            + f"\n\n{run['n']} CMU-MOSI {run['split']} transcripts ({run['words']} words) spoken "
              "by espeak-ng, Whisper base, greedy. " + provenance(run))


def host(run: dict) -> str:
    """'AMD EPYC (avx2), 2 cores': what a run's figures depend on most."""
    m = run.get("machine", {})
    isa = f" ({m['isa']})" if m.get("isa") else ""
    gpu = ", no GPU" if m.get("gpu", "none") == "none" else f", {m['gpu']}"
    return f"{m.get('cpu', '?')}{isa}, {m.get('cores', '?')} cores{gpu}"


def pipeline(runs: list[dict]) -> str:
    """Every run of benchmarks/pipeline.py, one row per mode (the peak resident memory is the
    whole run's, both modes)."""

    def mem(run: dict) -> str:
        peak = run.get("peak_memory_mb")
        return "-" if peak is None else f"{peak / 1000:.2f} GB"

    rows = []
    for run in runs:
        for mode, r in run["results"].items():
            s, u = r["step_latency_ms"], r["utterance_latency_ms"] or {}
            step = (f"{s['p50']:.0f} / {s['p95']:.0f} / {s['p99']:.0f}" if mode == "realtime"
                    else "(queueing)")  # fmt: skip
            utt = f"{u['p50']:.0f} / {u['p95']:.0f}" if u and mode == "realtime" else "-"
            c = r.get("curve")  # the earliest runs did not measure it
            curve = (f"{100 * c['saturation']:.1f} / {c['jitter']:.3f} / "
                     f"{100 * c['sign_agreement']:.0f} ({c['decided']:.0f})" if c else "-")  # fmt: skip
            if run.get("text_hold") is False:  # a run with the words held only while spoken
                mode += ", no text hold"
            rows.append([run.get("date", "?")[:10], mode, step, utt,
                         f"{r['speed_x_realtime']:.2f}x", f"{r['cpu_cores_used']:.2f}", curve,
                         mem(run), load_cell(run), host(run), run.get("git_commit", "?")])  # fmt: skip
    return table(["date", "mode", "step latency p50 / p95 / p99 ms",
                   "utterance latency after the pause p50 / p95 ms", "speed", "CPU cores",
                   "curve: saturated % / jitter / sign agree % (of)", "peak memory", "load",
                   "machine", "commit"], rows)  # fmt: skip


def pipeline_ab(runs: list[dict]) -> str:
    """Every A/B run of benchmarks/pipeline_ab.py: old and new build alternating in one run."""
    rows = []

    def p95(run: dict, build: str, mode: str) -> float:  # runs before it was summarised
        return float(statistics.median([r["step_latency_ms"]["p95"] for r in run["runs"]
                                if r["build"] == build and r["mode"] == mode]))  # fmt: skip

    for run in runs:
        for mode, r in run["summary"].items():
            old, new = r["median"]["old"], r["median"]["new"]
            rows.append([run.get("date", "?")[:16].replace("T", " "), run["old_commit"][:7],
                         run.get("git_commit", "?"), mode,
                         f"{old['cpu_s_per_clip_s']:.3f} -> {new['cpu_s_per_clip_s']:.3f} "
                         f"({r['cpu_new_vs_old_pct']:+.1f} %)",
                         f"{old['step_latency_p50_ms']:.0f} -> {new['step_latency_p50_ms']:.0f}",
                         f"{p95(run, 'old', mode):.0f} -> {p95(run, 'new', mode):.0f}",
                         f"{old['utterance_latency_p50_ms']:.0f} -> {new['utterance_latency_p50_ms']:.0f}",
                         load_cell(run)])  # fmt: skip
    return ("Old and new build alternating in one run (`python -m benchmarks.pipeline_ab --old REF`, "
            "medians of " + str(runs[-1]["rounds"]) + " rounds, the demo clip, the same checkpoint; "
            "`benchmarks/results/pipeline-ab-session.json`):\n\n"
            + table(["date (UTC)", "old", "new", "mode", "CPU s per clip s", "step p50 ms",
                      "step p95 ms", "utterance p50 ms", "load"], rows))  # fmt: skip


def _multistream_rows(run: dict) -> list[list]:
    def span(v, scale=1.0, digits=0):
        lo, hi = min(v) / scale, max(v) / scale
        return f"{lo:.{digits}f}" if f"{lo:.{digits}f}" == f"{hi:.{digits}f}" else \
            f"{lo:.{digits}f} to {hi:.{digits}f}"  # fmt: skip

    rows = []
    for r in run["results"]:
        per = r["per_stream"]
        p50 = [s["step_latency_ms"]["p50"] for s in per]
        p95 = [s["step_latency_ms"]["p95"] for s in per]
        ends = [s["lag_s"]["end"] for s in per]
        utt = [s["utterance_latency_ms"]["p50"] for s in per if s["utterance_latency_ms"]]
        keep = sum(s["keeps_realtime"] for s in per)
        big = max(p95) > 2000
        unit, scale, digits = ("s", 1000.0, 1) if big else ("ms", 1.0, 0)
        faces = r.get("face_batching", {}).get("mean_batch")
        rows.append([r["streams"], f"{span(p50, scale, digits)} / {span(p95, scale, digits)} {unit}",
                     f"{span(ends, 1.0, 2)} s", f"{keep} of {len(per)}",
                     f"{span(utt, 1000.0, 2)} s" if utt else "-",
                     f"{r['cpu_cores_used']:.2f}", f"{r['cpu_cores_per_stream']:.2f}",
                     f"{r['batching']['mean_batch']:.2f}",
                     "-" if faces is None else f"{faces:.2f}",
                     f"{r['load_average_before'][0]:.2f}"])  # fmt: skip
    return rows


MULTISTREAM_HEADERS = ["streams", "step latency p50 / p95", "lag at the end",
                       "streams keeping real time", "utterance latency p50", "CPU cores",
                       "CPU s per stream-second", "steps per engine call",
                       "faces per network call", "load before"]  # fmt: skip


def multistream(run: dict) -> str:
    """One run of benchmarks/multistream.py, its Whisper workers named where not one."""
    workers = run.get("asr_workers", 1)
    head = ("" if workers == 1 else f"With `--asr-workers {workers}` (Whisper calls of {workers} "
            "streams at once):\n\n")  # fmt: skip
    return head + table(MULTISTREAM_HEADERS, _multistream_rows(run)) + "\n\n" + provenance(run)


def dashboard(run: dict) -> str:
    st, bu, lag = run["frame_ms_steady"], run["frame_ms_burst"], run["lag_ms"]
    rows = [
        ["steady (10 steps/s)", f"{st['p50']:.1f} / {st['p95']:.1f}"],
        [f"bursts (+{run['options']['burst_rate_hz']:.0f} messages/s)",
         f"{bu['p50']:.1f} / {bu['p95']:.1f}"],
    ]  # fmt: skip
    return (table(["condition", "frame time p50 / p95 ms (target p95 16)"], rows)
            + f"\n\n{run['messages_received']} of {run['messages_sent']} messages drawn, "
              f"{run['points_drawn']} points in the {run['options']['window_s']:.0f} s window; "
              f"message-to-screen lag p50 / p95 {lag['p50']:.0f} / {lag['p95']:.0f} ms "
              f"(target 100 ms); the dashboard used {run['dashboard_cpu_percent']:.0f} % of one "
              "core. " + provenance(run))  # fmt: skip


def serving(run: dict) -> str:
    limit = run.get("p95_limit_ms", 50.0)
    rows = [[r["engine"], r["streams"], f"{r['steps_per_s']:.0f}", f"{r['p50']:.1f}",
             f"{r['p95']:.1f}", "yes" if r["p95"] < limit and r["steps_per_s"] >= 10 *
             r["streams"] else "no"] for r in run["rows"]]  # fmt: skip
    within = [r["streams"] for r in run["rows"] if r["engine"] == "triton" and r["p95"] < limit
              and r["steps_per_s"] >= 10 * r["streams"]]  # fmt: skip
    return (table(["engine", "streams", "steps/s", "p50 ms", "p95 ms",
                    f"10 Hz streams within p95 {limit:.0f} ms"], rows)  # fmt: skip
            + f"\n\nThe most Triton streams measured within the limit: **{max(within, default=0)}**"
              " (larger counts were not measured or broke it). " + provenance(run))


def soak(runs: list[dict]) -> str:
    """Every real-time soak with a verdict on the peak growth."""
    runs = [r for r in runs if r.get("peak_rss_growth") is not None]
    if not runs:
        return "No real-time soak with a peak-growth verdict recorded yet."
    rows = []
    for r in runs:
        per = r["per_minute"]
        p50 = [m["step_latency_p50_ms"] for m in per if m["step_latency_p50_ms"] is not None]
        heap = [(m["c_heap_in_use_mb"], m["c_heap_free_mb"]) for m in per if "c_heap_in_use_mb" in m]
        heap_cell = (f"{min(h[0] for h in heap):.0f} to {max(h[0] for h in heap):.0f} MB; "
                     f"{heap[0][1]:.0f} -> {heap[-1][1]:.0f} MB" if heap else "not recorded")  # fmt: skip
        trims = "trim" if "c_heap_in_use_mb" in per[0] else "-"
        settings = trims + (" + 1 MiB mmap" if r.get("map_large_buffers") else "")
        if r.get("malloc_arena_max"):
            settings += f" + {r['malloc_arena_max']} arenas"
        rows.append([r.get("date", "?")[:16].replace("T", " "), r.get("git_commit", "?"), settings,
                     f"{r['minutes']:.0f} min", f"{per[0]['rss_mb']:.0f} MB",
                     f"**{r['peak_rss_growth']:+.1%}** (minute {r['peak_minute']})",
                     f"{r['final_rss_growth']:+.1%}", r["verdict"],
                     heap_cell, f"{min(p50) / 1000:.1f} to {max(p50) / 1000:.1f} s", r["errors"],
                     load_cell(r)])  # fmt: skip
    return ("Soak (`python -m benchmarks.soak --minutes 30`): the demo clip replayed in a loop at "
            "real time as a live session, a subscriber that reads nothing attached throughout; "
            f"verdict on the peak resident-memory growth after the first minute (target under "
            f"{runs[-1]['growth_target']:.0%}). Every run in "
            "`benchmarks/results/soak-realtime.json` (per-minute series there):\n\n"
            + table(["date (UTC)", "commit", "C heap measures", "length", "RSS after minute 1", "peak growth",
                      "at the end", "verdict", "C heap in use (range); held free (first -> last)",
                      "step latency p50 by minute", "errors", "load"],
                     rows))  # fmt: skip


def profile(runs: dict[str, dict]) -> str:
    """CPU per component of one live stream, each profiled build side by side (profile_stream.json
    keeps its runs by name, not in a list)."""
    names = list(runs)
    parts = list(runs[names[0]]["components"])
    rows = [[part, *(f"{runs[n]['components'][part]:.3f}" for n in names)] for part in parts]
    rows.append(["**total**", *(f"**{runs[n]['total_cores']:.3f}**" for n in names)])
    rows.append(["kept real time (step lag p95)", *(
        f"{'yes' if runs[n]['kept_up'] else 'no'} ({runs[n]['step_lag_s_p95']:.2f} s)"
        for n in names)])  # fmt: skip
    loads = "; ".join(
        f"{n}: {(runs[n].get('date') or runs[n]['machine']['date'])[:10]}, load "
        f"{runs[n]['load_average_before'][0]:.2f} -> "
        f"{runs[n]['load_average_after'][0]:.2f}{' (**busy**)' if runs[n]['busy'] else ''}"
        for n in names
    )
    m = runs[names[-1]]["machine"]
    return (table(["component (cores)", *names], rows)
            + f"\n\nCPU time per second of media, {runs[names[-1]]['wall_s']:.0f} s after "
            f"{runs[names[-1]]['warmup_s']:.0f} s of warm-up. *{m['cpu']}, "
            f"{m['cores']} cores, no GPU; {loads}.*")  # fmt: skip
