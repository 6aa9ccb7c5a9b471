"""The dashboard's status bar and warning banner: connection, engine, rates, drops, latency,
sources and rejected messages, in short texts that fit the default window width (details in
tooltips), and a red banner for exposure and lost devices. A mixin of DashboardWindow, which
owns `history`, `banner` and the status bar."""

from __future__ import annotations

from PyQt6.QtWidgets import QLabel

from ui.widgets import LABEL_COLOURS, MUTED


class StatusBarMixin:
    """Needs `self.history` (ui.history.History), `self.banner` (QLabel) and QMainWindow."""

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_labels: dict[str, QLabel] = {}
        for key in ("connection", "engine", "fps", "drops", "latency", "sources", "rejected"):
            label = QLabel("", self)
            bar.addWidget(label)
            self.status_labels[key] = label
        self.set_connection("connecting", 0)
        self.set_rejected(0, 0)
        self._show_status()

    def set_connection(self, state: str, reconnects: int) -> None:
        colour = {"connected": LABEL_COLOURS["positive"], "stalled": "#d29922"}.get(
            state, LABEL_COLOURS["negative"])
        label = self.status_labels["connection"]
        label.setText(f"● {state} · reconnects {reconnects}")
        label.setToolTip(f"subscriber connection; publisher restarts seen: {reconnects}")
        label.setStyleSheet(f"color: {colour};")

    def set_rejected(self, malformed: int, wrong_version: int) -> None:
        label = self.status_labels["rejected"]
        label.setText(f"malformed {malformed} · wrong ver {wrong_version}")
        label.setToolTip("messages ignored: not valid schema, or another schema version")
        label.setStyleSheet(f"color: {'#d29922' if malformed or wrong_version else MUTED};")

    def _show_status(self) -> None:
        s = self.history.status
        lab = self.status_labels
        if s is None:
            for key in ("engine", "fps", "drops", "latency", "sources"):
                lab[key].setText("")
            lab["engine"].setText("waiting for status…")
            self._set_banner([])
            return
        # Short texts, details in tooltips: everything fits the default width (1280 px).
        lab["engine"].setText(f"engine {s.engine}" + ("*" if s.engine_note else ""))
        lab["engine"].setToolTip(s.engine_note or "the requested engine")  # * why: in the tip
        lab["fps"].setText(f"{s.fps:.1f} fps · {s.step_rate_hz:.1f} steps/s")
        lab["drops"].setText(f"drops {s.dropped_frames}/{s.dropped_audio_blocks} · errors {s.errors}")
        lab["latency"].setText(f"p50 {_ms(s.latency_p50_ms)} · p95 {_ms(s.latency_p95_ms)}")
        lab["latency"].setToolTip("step latency, capture to emission")
        sanitised = s.sanitised.text + s.sanitised.audio + s.sanitised.visual
        lab["sources"].setText(f"cam {s.sources.camera} · mic {s.sources.microphone}"
                               + (f" · sanitised {sanitised}" if sanitised else ""))
        lab["drops"].setToolTip("dropped frames / audio blocks; last error: "
                                + (s.last_error or "none"))
        warnings = []
        sec = s.security
        if sec.exposed:
            how = "--insecure" if sec.insecure else "no CurveZMQ keys"
            warnings.append(f"⚠ Publisher bound beyond loopback at {sec.endpoint} without "
                            f"encryption ({how}): anyone on the network can read this affect data.")
        lost = [n for n in ("camera", "microphone") if getattr(s.sources, n) == "lost"]
        if lost:
            warnings.append(f"{' and '.join(lost)} lost: waiting for it to return.")
        self._set_banner(warnings)

    def _set_banner(self, warnings: list[str]) -> None:
        # Called with every status message (20/s in a burst): touch the label only on a change,
        # since a new text re-lays out the window's top and a style sheet re-polishes it.
        text = "\n".join(warnings)
        if text != self.banner.text():
            self.banner.setText(text)
        if bool(warnings) == self.banner.isHidden():
            self.banner.setVisible(bool(warnings))

    def status_text(self) -> str:
        """Everything the status bar and banner say, for tests and logs."""
        parts = [lbl.text() for lbl in self.status_labels.values()]
        if self.banner.isVisible() or self.banner.text():
            parts.append(self.banner.text())
        return " | ".join(p for p in parts if p)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"
