"""Who is speaking: the face whose mouth opening moves with the voice over the last second.

`SpeakerFinder`: `add_audio(t_start_s, samples)` with the microphone's 16 kHz blocks,
`add_mouths(t_s, {face id: mouth opening})` with each analysed frame (face_mesh.mouth_opening),
then `probabilities(t_s, ids, voice_active) -> {id: probability}` once a step.

How: the audio envelope is the RMS of 10 ms hops; for each face, the mouth openings of the last
`window_s` (1 s) are paired with the envelope averaged over the frame interval around each frame
time, both are differenced (movement, not level: a mouth held open or a face's resting shape
says nothing), and their Pearson correlation is taken at the best of a few lags up to
`max_lag_s` (the lips lead the sound by up to ~0.1 s). Probabilities: a softmax of the
correlations times `sharpness`. Without voice activity every face gets 0 and there is no speaker;
with one face it gets 1 (nothing to choose). `speaker(probabilities)`: the most probable face when
it has at least `min_probability` (0.5), else None (no face clearly moves with the voice).

Limits: needs landmarks (Face Mesh; not the Haar fallback) and at least `min_frames` (8) frames
of a face in the window (so no speaker in the first 0.8 s of a face at 10 analyses a second);
voices of people out of view, music, or two people talking at once are credited to whichever
visible mouth moves most like the sound.
"""

from __future__ import annotations

import collections

import numpy as np

from realtime.types import SAMPLE_RATE_HZ

HOP_S = 0.01


def utterance_speaker(step_speakers: list[int | None]) -> int | None:
    """The face that was the step's speaker most often over an utterance's steps (ties: the first
    to reach the count); None when no step had one."""
    counts = collections.Counter(s for s in step_speakers if s is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(s for s in step_speakers if s is not None and counts[s] == best)


class SpeakerFinder:
    def __init__(self, window_s: float = 1.0, max_lag_s: float = 0.12, sharpness: float = 6.0,
                 min_probability: float = 0.5, min_frames: int = 8) -> None:  # fmt: skip
        self.window_s, self.max_lag_s = window_s, max_lag_s
        self.min_frames = min_frames  # analysed frames of a face in the window (10 Hz: 0.8 s)
        self.sharpness, self.min_probability = sharpness, min_probability
        # Audio may run a few seconds ahead of the steps that read it (the live video worker lags).
        keep = int((window_s + 2 * max_lag_s + 5.0) / HOP_S)
        self._env: collections.deque[tuple[float, float]] = collections.deque(maxlen=keep)
        self._rest = np.zeros(0, np.float32)
        self._rest_t = 0.0
        self._mouths: dict[int, collections.deque[tuple[float, float]]] = {}

    def reset(self) -> None:
        self._env.clear()
        self._rest = np.zeros(0, np.float32)
        self._mouths.clear()

    def add_audio(self, t_start_s: float, samples: np.ndarray) -> None:
        hop = int(HOP_S * SAMPLE_RATE_HZ)
        if not len(self._rest):
            self._rest_t = t_start_s
        data = np.concatenate([self._rest, np.asarray(samples, np.float32).ravel()])
        n = len(data) // hop
        if n:
            frames = data[: n * hop].reshape(n, hop)
            rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
            for k, value in enumerate(rms):
                self._env.append((self._rest_t + (k + 0.5) * HOP_S, float(value)))
            self._rest_t += n * HOP_S
        self._rest = data[n * hop :]

    def add_envelope(self, t_start_s: float, hop_s: float, values: np.ndarray) -> None:
        """An envelope computed elsewhere instead of add_audio's RMS: the stream's voice frames'
        loudness (eGeMAPS Loudness_sma3, 10 ms hop), which the step assembler already has."""
        for k, value in enumerate(np.asarray(values, np.float64).ravel()):
            self._env.append((t_start_s + (k + 0.5) * hop_s, float(value)))

    def add_mouths(self, t_s: float, openings: dict[int, float]) -> None:
        for fid, value in openings.items():
            series = self._mouths.setdefault(fid, collections.deque(maxlen=120))
            series.append((t_s, float(value)))

    def _correlation(self, fid: int, t_s: float) -> float:
        series = [(t, v) for t, v in self._mouths.get(fid, ()) if t_s - self.window_s <= t <= t_s]
        if len(series) < self.min_frames or len(self._env) < 10:
            return 0.0
        times = np.array([t for t, _ in series])
        mouth = np.diff(np.array([v for _, v in series]))
        # Only sound up to t_s: what is known when the step is built, live or replayed alike.
        env = [(t, v) for t, v in self._env if t_s - self.window_s - 2 * self.max_lag_s <= t <= t_s]
        if len(env) < 10:
            return 0.0
        env_t = np.array([t for t, _ in env])
        env_v = np.array([v for _, v in env])
        half = max(float(np.median(np.diff(times))) / 2, HOP_S)
        best = -1.0
        for lag in np.arange(-self.max_lag_s, self.max_lag_s + 1e-9, 0.04):
            level = np.array([
                env_v[(env_t >= t + lag - half) & (env_t < t + lag + half)].mean()
                if np.any((env_t >= t + lag - half) & (env_t < t + lag + half)) else np.nan
                for t in times
            ])  # fmt: skip
            sound = np.diff(level)
            ok = np.isfinite(sound)
            if ok.sum() < 6 or np.std(mouth[ok]) < 1e-6 or np.std(sound[ok]) < 1e-9:
                continue
            best = max(best, float(np.corrcoef(mouth[ok], sound[ok])[0, 1]))
        return best if best > -1.0 else 0.0

    def probabilities(self, t_s: float, ids: list[int], voice_active: bool) -> dict[int, float]:
        for fid in [k for k in self._mouths if k not in ids]:
            if not self._mouths[fid] or t_s - self._mouths[fid][-1][0] > 5.0:
                del self._mouths[fid]
        if not ids:
            return {}
        if not voice_active:
            return {fid: 0.0 for fid in ids}
        if len(ids) == 1:
            return {ids[0]: 1.0}
        scores = np.array([self._correlation(fid, t_s) for fid in ids]) * self.sharpness
        weights = np.exp(scores - scores.max())
        probs = weights / weights.sum()
        return {fid: round(float(p), 4) for fid, p in zip(ids, probs)}

    def speaker(self, probabilities: dict[int, float]) -> int | None:
        if not probabilities:
            return None
        fid, p = max(probabilities.items(), key=lambda kv: kv[1])
        return fid if p > self.min_probability else None
