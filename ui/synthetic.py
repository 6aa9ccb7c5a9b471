"""A plausible synthetic affect session, for dashboard tests, screenshots and the benchmark.

It follows the pipeline's emission pattern: each step goes out provisional (revision 0) at once and
again as final (revision 1, nudged by its words when it lies in speech) once the ASR has caught
up `settle_steps` later; an utterance result follows its end; status goes out every second; an
experimenter's marker ("stimulus N") arrives half a second before each utterance starts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from contract.messages import (
    CIRCUMPLEX,
    Calibration,
    Expressions,
    FaceReadout,
    HeadPose,
    MarkerMessage,
    Message,
    ModalityWeights,
    PersonFace,
    Presence,
    SanitisedCounts,
    Security,
    SourceStates,
    StatusMessage,
    StepMessage,
    UtteranceMessage,
    VoiceReadout,
)

SENTENCES = {
    "positive": [
        "I really loved how the project turned out",
        "That was a wonderful surprise, thank you",
        "Honestly this is the best news all week",
    ],
    "neutral": [
        "The meeting is at three in the second room",
        "I took the train and then walked from the station",
        "We should look at the numbers again tomorrow",
    ],
    "negative": [
        "I am really disappointed with how it went",
        "That was frustrating and nobody listened",
        "It is awful, I cannot stand the noise anymore",
    ],
}
_MOOD = {"positive": 1.8, "neutral": 0.0, "negative": -1.9}


@dataclass(frozen=True)
class SyntheticOptions:
    duration_s: float = 60.0
    step_hz: float = 10.0
    settle_steps: int = 15  # steps stay provisional this long (ASR lag)
    session: str = "synthetic"
    t0_unix: float = 1_700_000_000.0
    seed: int = 0
    endpoint: str = "tcp://127.0.0.1:5556"
    loopback: bool = True
    curve: bool = False
    insecure: bool = False
    baseline_s: float = 20.0  # the calibration state goes to ready after this much face/speech
    people: int = 0  # > 0: steps carry `faces` for this many people, who take turns speaking


def _utterance_plan(opts: SyntheticOptions, rng: random.Random) -> list[tuple[float, float, str]]:
    """(t_start, t_end, label) spans with pauses between, cycling through all three labels."""
    labels = ["positive", "neutral", "negative"]
    spans, t = [], 1.5
    while True:
        length = rng.uniform(2.5, 4.5)
        if t + length > opts.duration_s - 1.0:
            return spans
        spans.append((t, t + length, labels[len(spans) % 3]))
        t += length + rng.uniform(1.5, 3.5)


def synthetic_session(opts: SyntheticOptions = SyntheticOptions()) -> list[tuple[float, Message]]:
    """Messages in emission order, each with its stream time of emission."""
    rng = random.Random(opts.seed)
    plan = _utterance_plan(opts, rng)
    hop = 1.0 / opts.step_hz
    n_steps = int(round(opts.duration_s * opts.step_hz))
    out: list[tuple[float, Message]] = []
    provisional: list[StepMessage] = []
    base = 0.0
    utt_seq = status_seq = marker_seq = 0
    faced_s = spoken_s = 0.0
    for k in range(n_steps):
        t0, t1 = k * hop, (k + 1) * hop
        span = next((s for s in plan if s[0] <= t0 < s[1]), None)
        target = _MOOD[span[2]] if span else 0.25 * math.sin(t0 / 7.0)
        base += 0.1 * (target - base) + rng.gauss(0.0, 0.04)
        face = (k // 40) % 9 != 8  # the face leaves the frame for 4 s now and then
        faced_s += hop if face else 0.0
        spoken_s += hop if span else 0.0
        w_text = 0.45 if span else 0.0
        w_vis = (1.0 - w_text) * (0.55 if face else 0.1)
        weights = ModalityWeights(w_text, round(1.0 - w_text - w_vis, 4), round(w_vis, 4))
        step = StepMessage(
            session=opts.session, seq=k, t_emit=opts.t0_unix + t1 + 0.08, t_start=t0, t_end=t1,
            intensity=_clip(base), modality_weights=weights,
            present=Presence(text=False, audio=span is not None, visual=face),
            revision=0, final=False, latency_ms=round(rng.uniform(60, 140), 1),
            face=_face(base, rng) if face else None,
            voice=_voice(base, t0, rng) if span else None,
        )
        if opts.people:
            speaker = 1 + plan.index(span) % opts.people if span else None
            faces = _people(opts, base, step.face, speaker, t0, rng)
            speaker = speaker if speaker in {f.id for f in faces} else None
            step = replace(step, faces=faces, speaker=speaker)
        out.append((t1, step))
        provisional.append(step)
        if len(provisional) > opts.settle_steps:
            old = provisional.pop(0)
            in_speech = old.present.audio
            out.append((t1, _finalise(old, in_speech, rng, opts.t0_unix + t1 + 0.1)))
        for s0, s1, label in plan:
            if s0 - 0.5 <= t1 < s0 - 0.5 + hop:  # the stimulus that prompts the utterance
                out.append((t1, MarkerMessage(
                    session=opts.session, seq=marker_seq, t_emit=opts.t0_unix + t1 + 0.01,
                    t_stream=round(s0 - 0.5, 3), source="synthetic-markers",
                    value=f"stimulus {marker_seq + 1}")))
                marker_seq += 1
            if s1 <= t1 < s1 + hop:  # pause detected right after the span ends
                u = _utterance(opts, utt_seq, s0, s1, label, rng, t1)
                if opts.people:
                    u = replace(u, speaker=1 + plan.index((s0, s1, label)) % opts.people)
                out.append((t1, u))
                utt_seq += 1
        if k % int(opts.step_hz) == 0:
            out.append((t1, _status(opts, status_seq, t1, face, rng, faced_s, spoken_s)))
            status_seq += 1
    return out


def _finalise(step: StepMessage, in_speech: bool, rng: random.Random, t_emit: float) -> StepMessage:
    # Words shift steps in speech only, smoothly (the text context changes slowly).
    nudge = 0.2 * math.sin(step.seq / 6.0) + rng.gauss(0.0, 0.03) if in_speech else 0.0
    return StepMessage(
        session=step.session, seq=step.seq, t_emit=t_emit, t_start=step.t_start,
        t_end=step.t_end, intensity=_clip(step.intensity + nudge),
        modality_weights=step.modality_weights,
        present=Presence(text=in_speech, audio=step.present.audio, visual=step.present.visual),
        revision=1, final=True, latency_ms=step.latency_ms, face=step.face, voice=step.voice,
        faces=step.faces, speaker=step.speaker,
    )


def _utterance(opts: SyntheticOptions, seq: int, s0: float, s1: float, label: str,
               rng: random.Random, t_now: float) -> UtteranceMessage:
    mood = _MOOD[label]
    text = SENTENCES[label][seq // 3 % len(SENTENCES[label])]
    return UtteranceMessage(
        session=opts.session, seq=seq, t_emit=opts.t0_unix + t_now + 0.6, utterance_id=seq,
        t_start=round(s0, 2), t_end=round(s1, 2), transcript=text,
        utterance_intensity=_clip(mood + rng.gauss(0, 0.3)),
        timestep_intensity=_clip(mood * 0.8 + rng.gauss(0, 0.2)),
        final_intensity=_clip(mood * 0.9 + rng.gauss(0, 0.1)),
        latency_ms=round(rng.uniform(450, 800), 1),
    )


def _people(opts: SyntheticOptions, mood: float, face: FaceReadout | None, speaker: int | None,
            t: float, rng: random.Random) -> tuple[PersonFace, ...]:
    """Person 1 is the step's face (absent when it is); the others sit to its right."""
    out = []
    for fid in range(1, opts.people + 1):
        f = face if fid == 1 else _face(-0.5 * mood + 0.3 * fid, rng)
        if f is None:
            continue
        out.append(PersonFace(
            id=fid, box=(60 + 200 * (fid - 1), 120 + round(6 * math.sin(t + fid)), 150, 170),
            expressions=f.expressions, valence=f.valence, arousal=f.arousal, quality=f.quality,
            speaking=0.0 if speaker is None else (0.85 if fid == speaker else 0.15 / opts.people),
            pose=HeadPose(round(10 * math.sin(t / 3 + fid), 2), 0.0, 0.0),
            baseline=f.baseline))  # fmt: skip
    return tuple(out)


def _face(mood: float, rng: random.Random) -> FaceReadout:
    """Expressions that lean happy with a positive mood and sad/angry with a negative one."""
    raw = {"angry": 0.4 + max(0.0, -mood) * 0.6, "disgust": 0.05, "fear": 0.2,
           "happy": 0.3 + max(0.0, mood) * 1.2, "sad": 0.5 + max(0.0, -mood) * 0.8,
           "surprise": 0.15, "neutral": 1.4}  # fmt: skip
    raw = {k: v * rng.uniform(0.8, 1.25) for k, v in raw.items()}
    total = sum(raw.values())
    probs = {k: round(v / total, 6) for k, v in raw.items()}
    probs["neutral"] = round(1.0 - sum(v for k, v in probs.items() if k != "neutral"), 6)
    valence = sum(p * CIRCUMPLEX[k][0] for k, p in probs.items())
    arousal = sum(p * CIRCUMPLEX[k][1] for k, p in probs.items())
    return FaceReadout(Expressions(**probs), round(valence, 6), round(arousal, 6),
                       quality=round(rng.uniform(0.75, 0.95), 3))  # fmt: skip


def _voice(mood: float, t: float, rng: random.Random) -> VoiceReadout:
    arousal = math.tanh(0.4 * abs(mood) + 0.3 * math.sin(t * 2.1) + rng.gauss(0.0, 0.1))
    return VoiceReadout(loudness=round(0.8 + 0.4 * arousal + rng.uniform(0, 0.2), 4),
                        pitch=round(24.0 + 3.0 * arousal + rng.gauss(0, 0.5), 3),
                        pitch_variability=round(2.0 + abs(arousal), 3), arousal=round(arousal, 4))


def _status(opts: SyntheticOptions, seq: int, t_now: float, face: bool,
            rng: random.Random, faced_s: float = 0.0, spoken_s: float = 0.0) -> StatusMessage:
    b = opts.baseline_s
    progress = min(1.0, faced_s / b, spoken_s / b) if b else 0.0
    calibration = Calibration(
        state="off" if not b else "ready" if progress >= 1.0 else "calibrating", baseline_s=b,
        progress=round(progress, 4), face_s=round(faced_s, 3), voice_s=round(spoken_s, 3),
        loaded=False,
    )  # fmt: skip
    return StatusMessage(
        session=opts.session, seq=seq, t_emit=opts.t0_unix + t_now, t_stream=t_now,
        engine="onnx", engine_note=None, fps=round(rng.uniform(29.3, 30.0), 1),
        step_rate_hz=opts.step_hz, dropped_frames=seq // 20, dropped_audio_blocks=0,
        latency_p50_ms=round(rng.uniform(85, 100), 1),
        latency_p95_ms=round(rng.uniform(150, 190), 1), errors=0, last_error=None,
        sources=SourceStates(camera="ok", microphone="ok"),
        sanitised=SanitisedCounts(text=0, audio=seq // 30, visual=0),
        security=Security(endpoint=opts.endpoint, loopback=opts.loopback, curve=opts.curve,
                          insecure=opts.insecure),
        calibration=calibration,
    )


def _clip(x: float) -> float:
    return round(max(-3.0, min(3.0, x)), 3)
