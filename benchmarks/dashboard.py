"""Dashboard under load: GUI-thread time per frame and the lag from `t_emit` to drawing.

A publisher process sends 10 steps/s (each step provisional, then final 1.5 s later, and a status
per second) for the whole run, plus bursts of 200 extra messages/s (step revisions, utterances,
status) in the middle third. The dashboard runs in this process, offscreen, with its 300 s window
already holding 290 s of history, so every frame draws the longest plot it ever draws.

Per frame we time `refresh()` (setData) plus the paint it causes (the pending paint events,
processed at once, socket notifiers excluded), as wall time and as GUI-thread CPU time (the
latter excludes time the scheduler gave to other processes on a busy machine). Lag: wall clock
after the frame that first shows a message minus its `t_emit`. Event-loop lateness: how late a
10 ms heartbeat timer fires, i.e. the longest the window could not react.
Targets: frame p95 < 16 ms, lag < 100 ms.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/dashboard.py [--duration 30]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("benchmarks.dashboard")


@dataclass(frozen=True)
class BenchOptions:
    duration_s: float = 30.0
    step_hz: float = 10.0
    burst_rate_hz: float = 200.0
    prefill_s: float = 290.0  # history already in the window when the run starts
    window_s: float = 300.0
    endpoint: str = ""  # empty: a free loopback port
    session: str = "bench"
    people: int = 0  # > 0: steps carry `faces` for this many people (issue 33: the goal is 2)

    @property
    def burst(self) -> tuple[float, float]:  # the middle third (10 s of a 30 s run)
        return self.duration_s / 3, 2 * self.duration_s / 3


def publish(opts: BenchOptions, sent: mp.Value) -> None:
    """Publisher process: paced steps with provisional->final revisions, plus the burst."""
    import zmq

    from contract.messages import encode
    from ui.synthetic import SyntheticOptions, synthetic_session

    template = synthetic_session(SyntheticOptions(duration_s=12.0, session=opts.session,
                                                  people=opts.people))  # fmt: skip
    steps = [m for _, m in template if m.TOPIC == "msrg.step" and m.revision == 0]
    utts = [m for _, m in template if m.TOPIC == "msrg.utterance"]
    status = next(m for _, m in template if m.TOPIC == "msrg.status")
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, 1_000_000)
    sock.bind(opts.endpoint)
    time.sleep(1.5)  # let the dashboard's SUB connect and subscribe before counting starts

    def send(msg: object) -> None:
        sock.send_multipart(encode(msg.TOPIC, replace(msg, t_emit=time.time())))  # type: ignore
        sent.value += 1

    def step(k: int, revision: int) -> object:
        t0 = opts.prefill_s + k / opts.step_hz
        s = steps[k % len(steps)]
        return replace(s, seq=int(opts.prefill_s * opts.step_hz) + k, t_start=t0,
                       t_end=t0 + 1 / opts.step_hz, revision=revision, final=revision == 1)

    start = time.monotonic()
    k = n_burst = 0
    next_step, next_burst = start, start + opts.burst[0]
    while (now := time.monotonic()) - start < opts.duration_s:
        if now >= next_step:
            send(step(k, 0))
            if k >= 15:
                send(step(k - 15, 1))
            if k % int(opts.step_hz) == 0:
                send(replace(status, seq=k, t_stream=opts.prefill_s + k / opts.step_hz))
            k += 1
            next_step += 1 / opts.step_hz
        if opts.burst[0] <= now - start < opts.burst[1] and now >= next_burst:
            kind = n_burst % 10
            if kind < 8:  # mostly revisions of the provisional tail, as late words would cause
                send(step(max(0, k - 1 - kind), 2 + n_burst))
            elif kind == 8:
                u = utts[n_burst % len(utts)]
                send(replace(u, seq=n_burst, utterance_id=10_000 + n_burst))
            else:
                send(replace(status, seq=100_000 + n_burst))
            n_burst += 1
            next_burst += 1 / opts.burst_rate_hz
        wake = min(next_step, next_burst if now - start < opts.burst[1] else next_step)
        time.sleep(max(0.0, wake - time.monotonic()))
    time.sleep(0.5)
    sock.close(linger=1000)


def _free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def machine() -> dict[str, object]:
    """What the shared run record (benchmarks.machine) does not already say."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpus_usable": usable, "qt_platform": os.environ.get("QT_QPA_PLATFORM", "")}


def run(opts: BenchOptions) -> dict[str, object]:
    import psutil
    from PyQt6.QtCore import QEventLoop, Qt, QTimer
    from PyQt6.QtWidgets import QApplication

    from ui.app import connect_window
    from ui.dashboard import DashboardWindow
    from ui.history import History
    from ui.subscriber import Subscriber, SubscriberOptions
    from ui.synthetic import SyntheticOptions, synthetic_session

    app = QApplication.instance() or QApplication(sys.argv[:1])
    history = History()
    prefill = SyntheticOptions(duration_s=opts.prefill_s, session=opts.session,
                               people=opts.people)  # fmt: skip
    history.apply_all(m for _, m in synthetic_session(prefill))
    window = DashboardWindow(history, refresh_ms=33)
    for _, msg in synthetic_session(prefill):  # the readout row holds the same 290 s of history
        window.readouts.apply(msg)
        window.people.apply(msg)
    window.set_window(opts.window_s)
    window.timer.stop()  # the benchmark drives the same 33 ms timer, with timing around it
    sub = Subscriber(SubscriberOptions(endpoint=opts.endpoint), parent=window)
    connect_window(window, sub)
    window.show()

    pending: list[float] = []  # t_emit of messages received but not yet drawn
    lags_ms: list[float] = []
    frames: list[tuple[float, float]] = []  # (run time s, GUI ms)
    drains_ms: list[float] = []
    frame_cpu_ms: list[float] = []  # GUI-thread CPU time: excludes time other processes took
    sub.messages.connect(lambda msgs: pending.extend(m.t_emit for m in msgs))
    real_drain = sub.drain

    def timed_drain() -> int:
        t0 = time.perf_counter()
        n = real_drain()
        if n:
            drains_ms.append((time.perf_counter() - t0) * 1e3)
        return n

    sub.drain = timed_drain  # type: ignore[method-assign]  # the notifier calls through this
    sub._notifier.activated.disconnect()
    sub._notifier.activated.connect(timed_drain)

    start = time.monotonic()

    def frame() -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        drawn = window.frames_drawn
        window.refresh()
        if window.frames_drawn == drawn:
            return  # nothing new: no frame drawn
        app.processEvents(QEventLoop.ProcessEventsFlag.ExcludeSocketNotifiers)  # the paint
        done = time.time()
        frames.append((time.monotonic() - start, (time.perf_counter() - t0) * 1e3))
        frame_cpu_ms.append((time.thread_time() - c0) * 1e3)
        lags_ms.extend((done - t) * 1e3 for t in pending)
        pending.clear()

    timer = QTimer()
    timer.timeout.connect(frame)
    timer.start(33)
    lateness_ms: list[float] = []
    beat = {"last": time.perf_counter()}

    def heartbeat() -> None:
        now = time.perf_counter()
        lateness_ms.append(max(0.0, (now - beat["last"]) * 1e3 - 10.0))
        beat["last"] = now

    heart = QTimer()
    heart.setTimerType(Qt.TimerType.PreciseTimer)
    heart.timeout.connect(heartbeat)
    heart.start(10)
    sent = mp.Value("q", 0, lock=False)
    pub = mp.get_context("spawn").Process(target=publish, args=(opts, sent), daemon=True)
    proc = psutil.Process()
    cpu0 = proc.cpu_times()
    pub.start()
    QTimer.singleShot(int((opts.duration_s + 3.0) * 1000), app.quit)
    app.exec()
    cpu1 = proc.cpu_times()
    wall = time.monotonic() - start
    pub.join(timeout=5)
    sub.close()
    window.close()

    b0, b1 = opts.burst
    b0, b1 = b0 + 1.5, b1 + 1.5  # the publisher starts 1.5 s after we do
    burst = [ms for t, ms in frames if b0 <= t < b1]
    steady = [ms for t, ms in frames if not b0 <= t < b1]
    gui_busy_s = (sum(ms for _, ms in frames) + sum(drains_ms)) / 1e3
    return {
        "options": asdict(opts),
        "machine": machine(),
        "messages_sent": int(sent.value),
        "messages_received": sub.received,
        "messages_malformed": sub.malformed,
        "frames": len(frames),
        "frame_ms": {"p50": percentile([f for _, f in frames], 50),
                     "p95": percentile([f for _, f in frames], 95),
                     "max": max(f for _, f in frames)},
        "frame_cpu_ms": {"p50": percentile(frame_cpu_ms, 50),
                         "p95": percentile(frame_cpu_ms, 95)},
        "frame_ms_steady": {"p50": percentile(steady, 50), "p95": percentile(steady, 95)},
        "frame_ms_burst": {"p50": percentile(burst, 50), "p95": percentile(burst, 95)},
        "drain_ms": {"p50": percentile(drains_ms, 50), "p95": percentile(drains_ms, 95),
                     "max": max(drains_ms, default=float("nan")), "calls": len(drains_ms)},
        "lag_ms": {"p50": percentile(lags_ms, 50), "p95": percentile(lags_ms, 95),
                   "p99": percentile(lags_ms, 99), "max": max(lags_ms, default=float("nan"))},
        "event_loop_lateness_ms": {"p50": percentile(lateness_ms, 50),
                                   "p95": percentile(lateness_ms, 95),
                                   "max": max(lateness_ms, default=float("nan"))},
        "gui_thread_busy_fraction": gui_busy_s / wall,
        "dashboard_cpu_percent": 100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system))
        / wall,
        "points_drawn": len(window.final_curve.getData()[0]),
        "targets": {"frame_p95_ms": 16.0, "lag_ms": 100.0},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=BenchOptions.duration_s)
    parser.add_argument("--endpoint", default="", help="default: a free loopback port")
    parser.add_argument("--window", type=float, default=BenchOptions.window_s,
                        help="plot window in seconds (default: the longest, 300)")
    parser.add_argument("--people", type=int, default=0,
                        help="people in view: steps carry `faces` (default 0: none)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write only this file (default: append a run to "
                             "benchmarks/results/dashboard.json)")  # fmt: skip
    args = parser.parse_args()
    from benchmarks.machine import load_line, start_run, write_result

    start_run()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    result = run(BenchOptions(duration_s=args.duration, window_s=args.window,
                              endpoint=args.endpoint or _free_endpoint(), people=args.people))
    if not result["messages_sent"]:
        log.error("the publisher sent nothing (see its error above); no result written")
        return 1
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        out = args.out
    else:
        result["options"]["endpoint"] = ""  # a free port, different every run
        out = write_result("dashboard", result, engine="none (dashboard only)")
    f, lag = result["frame_ms"], result["lag_ms"]
    rows = [
        ("messages sent / received", f"{result['messages_sent']} / {result['messages_received']}"),
        ("frames drawn", str(result["frames"])),
        (f"points in the {args.window:.0f} s plot", str(result["points_drawn"])),
        ("frame ms p50 / p95 / max", f"{f['p50']:.1f} / {f['p95']:.1f} / {f['max']:.1f}"),
        ("frame CPU ms p50 / p95", "{p50:.1f} / {p95:.1f}".format(**result["frame_cpu_ms"])),
        ("frame ms p50 / p95 steady", "{p50:.1f} / {p95:.1f}".format(
            **result["frame_ms_steady"])),
        ("frame ms p50 / p95 burst", "{p50:.1f} / {p95:.1f}".format(**result["frame_ms_burst"])),
        ("drain ms p50 / p95 / max", "{p50:.2f} / {p95:.2f} / {max:.2f}".format(
            **result["drain_ms"])),
        ("lag ms p50 / p95 / p99 / max", f"{lag['p50']:.0f} / {lag['p95']:.0f} / "
                                         f"{lag['p99']:.0f} / {lag['max']:.0f}"),
        ("event-loop lateness ms p95 / max", "{p95:.1f} / {max:.1f}".format(
            **result["event_loop_lateness_ms"])),
        ("GUI thread busy", f"{100 * result['gui_thread_busy_fraction']:.0f} %"),
        ("dashboard CPU", f"{result['dashboard_cpu_percent']:.0f} % of one core"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")  # the benchmark table is this script's output
    print(load_line())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
