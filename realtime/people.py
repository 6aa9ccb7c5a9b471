"""Several people through the stream (issue 33): faces with ids per frame, pooled per step, the
step's speaker, and which face the model sees.

    sampler = PeopleSampler(FaceSampler(...), MultiFaceAnalyzer(...), rate_hz)  # video worker
    obs = sampler.push(frame)     # today's FaceObservation, with `people`: a PeopleFrame
    steps = PeopleSteps(step_hz)  # inside the StepAssembler (live core and file replay alike)
    steps.push(event)             # FaceAnalysed (faces, mouths), VoiceAnalysed (loudness)
    batch = steps.apply(batch)    # each step gets `people` (a StepPeople); see below
    book = PeopleReadouts(baseline_s, hop_s)  # the stream core: wire records, baselines by id

Per step, each face seen in the step's analysed frames: its mean expression probabilities,
valence and arousal of that mean (CIRCUMPLEX), mean quality, last box and head pose, and its
12 model features (the probabilities, the box's centre and size over the frame's, the quality: the
single-face path's layout, realtime/extractors/face.py). The speaker: the face whose mouth moves
with the voice over the second up to the step's end (realtime/speaker.py) while the step has voice
activity; the envelope is the voice frames' loudness, so live and replay see the same numbers and
no raw audio has to reach the core.

The model's visual input and the message's `face`: with two or more faces in a step, the primary
face's features (the speaker, else the largest); with one face or none, the single-face path's
own features, unchanged (the Haar cascade's largest face, as every checkpoint was trained on), so
one person's messages are today's apart from the new fields.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, replace

import numpy as np

from contract import messages
from contract.readout_messages import CIRCUMPLEX, EXPRESSION_LABELS
from realtime.extractors.face import FaceSampler
from realtime.extractors.multi_face import MultiFaceAnalyzer, PersonBaselines, PersonFace
from realtime.readouts import LOUDNESS_INDEX
from realtime.speaker import SpeakerFinder, utterance_speaker
from realtime.stage import Stage
from realtime.stream_events import FaceAnalysed, VoiceAnalysed
from realtime.types import FaceObservation, StepBatch, StepFeatures, VideoFrame

_VA = np.array([CIRCUMPLEX[name] for name in EXPRESSION_LABELS], np.float64)  # (7, 2)


@dataclass(frozen=True)
class PeopleFrame:
    """The tracked faces of one frame. fresh: analysed now (False: the face-rate interval's earlier
    analysis, reused; its mouths are not counted twice)."""

    faces: tuple[PersonFace, ...]
    size: tuple[int, int]  # frame width, height in pixels
    fresh: bool


class PeopleSampler(Stage[VideoFrame]):
    """The single-face sampler and the multi-face analyser at the same rate: the first frame of
    each 1/rate_hz interval is analysed for every face (rate 0: every frame) and the interval's
    later frames reuse it. push(frame) -> the FaceSampler's observation with `people` set."""

    def __init__(self, sampler: FaceSampler, analyzer: MultiFaceAnalyzer, rate_hz: float) -> None:
        self.sampler, self.analyzer, self.rate_hz = sampler, analyzer, rate_hz
        self.reset()

    def reset(self) -> None:
        self.sampler.reset()
        self._slot: int | None = None
        self._held: tuple[PersonFace, ...] = ()

    def flush(self) -> None:
        return None

    def push(self, frame: VideoFrame) -> FaceObservation:
        obs = self.sampler.push(frame)
        slot = math.floor(frame.t_s * self.rate_hz + 1e-9) if self.rate_hz > 0 else None
        fresh = slot is None or slot != self._slot
        if fresh:
            self._held = tuple(self.analyzer.analyse(frame))
            self._slot = slot
        height, width = frame.image.shape[:2]
        return replace(obs, people=PeopleFrame(self._held, (width, height), fresh))


def preview_faces(obs: FaceObservation) -> tuple[tuple[int, tuple[int, int, int, int]], ...]:
    """((id, box), ...) of a frame's tracked faces, for the in-process camera preview."""
    people = obs.people
    return tuple((f.id, f.box) for f in people.faces) if isinstance(people, PeopleFrame) else ()


@dataclass(frozen=True)
class StepPerson:
    id: int
    box: tuple[int, int, int, int]  # the last analysed frame's
    probabilities: tuple[float, ...]  # EXPRESSION_LABELS order, mean over the step's frames
    valence: float
    arousal: float
    quality: float
    pose: dict[str, float] | None  # the last analysed frame's; None without landmarks
    speaking: float
    features: np.ndarray  # (12,) float32: the model's visual layout

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


@dataclass(frozen=True)
class StepPeople:
    faces: tuple[StepPerson, ...]  # largest first
    speaker: int | None
    primary: int | None  # the face the model saw when there were several, else None


def _pool(fid: int, seen: list[tuple[PersonFace, tuple[int, int]]]) -> StepPerson:
    probs = np.mean([pf.probabilities for pf, _ in seen], axis=0).astype(np.float64)
    probs = probs / probs.sum() if probs.sum() > 0 else np.full(len(probs), 1.0 / len(probs))
    valence, arousal = (float(v) for v in probs @ _VA)
    quality = float(np.mean([pf.quality for pf, _ in seen]))
    last, (width, height) = seen[-1]
    x, y, w, h = last.box
    geometry = [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height, quality]
    features = np.concatenate([probs, geometry]).astype(np.float32)
    return StepPerson(fid, last.box, tuple(round(float(p), 6) for p in probs), round(valence, 6),
                      round(arousal, 6), round(quality, 6), last.pose, 0.0, features)  # fmt: skip


class PeopleSteps:
    """Per-step pooling of every tracked face and the step's speaker (see the module doc)."""

    EVENTS = (FaceAnalysed, VoiceAnalysed)

    def __init__(self, step_hz: float) -> None:
        self.step_hz = step_hz
        self.reset()

    def reset(self) -> None:
        self.speakers = SpeakerFinder()
        self._acc: dict[int, dict[int, list]] = {}  # step -> face id -> [(PersonFace, size)]
        self._analysed: set[int] = set()  # steps with at least one people analysis
        self._built: dict[int, tuple[StepPeople, np.ndarray | None]] = {}  # seq -> (people, visual)
        self._next_seq = 0

    def push(self, event: FaceAnalysed | VoiceAnalysed) -> None:
        if isinstance(event, VoiceAnalysed):
            frames = event.frames
            if len(frames.values):
                self.speakers.add_envelope(frames.t_start_s, frames.hop_s,
                                           np.asarray(frames.values)[:, LOUDNESS_INDEX])  # fmt: skip
            return
        people = event.observation.people
        if not isinstance(people, PeopleFrame):
            return
        t_s = event.observation.t_s
        k = int(math.floor(t_s * self.step_hz + 1e-9))
        if k >= self._next_seq:
            self._analysed.add(k)
            by_id = self._acc.setdefault(k, {})
            for pf in people.faces:
                by_id.setdefault(pf.id, []).append((pf, people.size))
        if people.fresh:
            mouths = {pf.id: pf.mouth for pf in people.faces if pf.mouth is not None}
            if mouths:
                self.speakers.add_mouths(t_s, mouths)

    def apply(self, batch: StepBatch) -> StepBatch:
        """The batch's new and revised steps with `people` set, and, with several faces, the
        primary face's features as their visual input."""
        new = tuple(self._attach(s, build=True) for s in batch.new)
        revised = tuple(self._attach(s, build=False) for s in batch.revised)
        for seq in batch.final:
            self._built.pop(seq, None)
        return replace(batch, new=new, revised=revised)

    def _attach(self, step: StepFeatures, build: bool) -> StepFeatures:
        if build:
            self._built[step.seq] = self._build(step)
            self._next_seq = max(self._next_seq, step.seq + 1)
        people, visual = self._built.get(step.seq, (None, None))
        if people is None:
            return step
        if visual is None:
            return replace(step, people=people)
        present = (step.present[0], step.present[1], True)
        return replace(step, people=people, visual=visual, present=present)

    def _build(self, step: StepFeatures) -> tuple[StepPeople | None, np.ndarray | None]:
        for k in [k for k in self._acc if k < step.seq]:
            del self._acc[k]  # steps skipped (none built before this one)
        analysed = step.seq in self._analysed
        self._analysed = {k for k in self._analysed if k > step.seq}
        by_id = self._acc.pop(step.seq, {})
        if not analysed:
            return None, None
        faces = sorted((_pool(fid, seen) for fid, seen in by_id.items()), key=lambda f: -f.area)
        with_mouth = [f.id for f in faces if any(pf.mouth is not None for pf, _ in by_id[f.id])]
        ids = with_mouth if len(faces) > 1 else [f.id for f in faces]
        probs = self.speakers.probabilities(step.t_end_s, ids, bool(step.present[1]))
        speaker = self.speakers.speaker(probs)
        faces = [replace(f, speaking=probs.get(f.id, 0.0)) for f in faces]
        if len(faces) < 2:
            return StepPeople(tuple(faces), speaker, None), None
        primary = next((f for f in faces if f.id == speaker), faces[0])
        return StepPeople(tuple(faces), speaker, primary.id), primary.features


class PeopleReadouts:
    """The stream core's side: each new step's `faces` records (with each person's own baseline,
    observed once per step) kept by seq until published final, and the step speakers by seq for
    the utterance's speaker."""

    def __init__(self, baseline_s: float, hop_s: float, keep_steps: int = 6000) -> None:
        self.baselines = PersonBaselines(baseline_s, hop_s)
        self._by_seq: dict[int, tuple[tuple[messages.PersonFace, ...], int | None]] = {}
        self._speakers: collections.OrderedDict[int, tuple[float, float, int | None]] = (
            collections.OrderedDict())  # fmt: skip
        self._keep = keep_steps

    def admit(self, steps: tuple[StepFeatures, ...] | list[StepFeatures]) -> None:
        for step in steps:
            people = step.people
            if not isinstance(people, StepPeople):
                continue
            records = tuple(self._record(f) for f in people.faces)
            self._by_seq[step.seq] = (records, people.speaker)
            self._speakers[step.seq] = (step.t_start_s, step.t_end_s, people.speaker)
            while len(self._speakers) > self._keep:
                self._speakers.popitem(last=False)

    def _record(self, f: StepPerson) -> messages.PersonFace:
        rel = self.baselines.observe(f.id, f.valence, f.arousal)
        clip = lambda v: min(1.0, max(-1.0, v))  # noqa: E731
        pose = None if f.pose is None else messages.HeadPose(
            **{k: min(180.0, max(-180.0, float(v))) for k, v in f.pose.items()})  # fmt: skip
        base = None
        if rel:
            base = messages.FaceBaseline(**{k: None if v is None else round(v, 6)
                                            for k, v in rel.items()})  # fmt: skip
        return messages.PersonFace(
            id=f.id, box=(max(0, int(f.box[0])), max(0, int(f.box[1])), max(1, int(f.box[2])),
                          max(1, int(f.box[3]))),
            expressions=messages.Expressions(*f.probabilities), valence=clip(f.valence),
            arousal=clip(f.arousal), quality=min(1.0, max(0.0, f.quality)),
            speaking=min(1.0, max(0.0, f.speaking)), pose=pose, baseline=base,
        )  # fmt: skip

    def take(self, seq: int, final: bool) -> tuple[tuple | None, int | None]:
        """(faces, speaker) of a step; the record is dropped once the step is final."""
        got = (self._by_seq.pop if final else self._by_seq.get)(seq, None)
        return got if got is not None else (None, None)

    def utterance_speaker(self, t_start_s: float, t_end_s: float) -> int | None:
        """The face that was the step speaker most often over the steps overlapping the
        utterance (the steps its result is computed from, StepRunner.steps_between)."""
        return utterance_speaker([s for t0, t1, s in self._speakers.values()
                                  if t1 > t_start_s and t0 < t_end_s])  # fmt: skip

    def state(self, fid: int) -> str:
        return self.baselines.state(fid)
