"""Events in, model time steps out: the one place where what the extractors found becomes steps.

    assembler.push(event)             # FaceAnalysed, VoiceAnalysed, SpeechScored, SegmentOpened,
                                      # SegmentClosed, WordsRecognised, StreamEnded
    batch = assembler.pull(now_s)     # StepBatch: new steps, revised steps, final seqs
    batch = assembler.flush()         # end of stream: every step, final once no words are owed

The aligner pools the modalities into fixed-rate steps; the utterance tracker knows which speech
segments still wait for their words, and so how far text is settled, which is what makes a step
final. Each files the events it takes. With several people analysed (realtime/people.py), their
per-step faces and speaker are attached to the steps here too, so live and replay agree on them.
The stream core (realtime/stream_core.py: live, on the pipeline's core thread, with the engine behind it) and file replay (realtime/replay.py: one
thread, features only) push the same events into a StepAssembler, so the steps a dataset is
built from are the steps the live core runs the model on. A stage (realtime/stage.py).
"""

from __future__ import annotations

import math

from realtime.aligner import Aligner, AlignerOptions
from realtime.people import PeopleSteps
from realtime.stage import Stage
from realtime.stream_events import (
    FaceAnalysed,
    SegmentClosed,
    SegmentOpened,
    SpeechScored,
    StreamEnded,
    VoiceAnalysed,
    WordsRecognised,
)
from realtime.types import StepBatch
from realtime.utterances import PendingUtterance, UtteranceTracker

StepEvent = (
    FaceAnalysed | VoiceAnalysed | SpeechScored | SegmentOpened | SegmentClosed
    | WordsRecognised | StreamEnded
)  # fmt: skip


class StepAssembler(Stage[StepEvent]):
    def __init__(self, options: AlignerOptions) -> None:
        self.aligner = Aligner(options)
        self.tracker = UtteranceTracker()
        self.people = PeopleSteps(options.step_hz)
        self._expected = {k for k, v in (("video", options.expect_video),
                                         ("audio", options.expect_audio)) if v}  # fmt: skip
        self.ended: set[str] = set()  # the streams ("video", "audio") that have ended

    def push(self, event: StepEvent) -> None:
        """File an event with the aligner, the tracker or both. Gives nothing: steps wait for
        every modality or the caller's clock (pull)."""
        filed = False
        for stage in (self.aligner, self.tracker, self.people):
            if isinstance(event, stage.EVENTS):
                stage.push(event)
                filed = True
        if not filed:
            raise TypeError(f"the step assembler has no handler for {type(event).__name__}")
        if isinstance(event, StreamEnded):
            self.ended.add(event.kind)

    @property
    def all_ended(self) -> bool:
        return self.ended >= self._expected

    def pull(self, now_s: float | None = None) -> StepBatch:
        """What the events so far allow. now_s: live stream time, after which a late modality
        stops holding steps back (None: steps wait for every modality, as in a replay). Once
        every stream has ended, as flush."""
        if self.all_ended:
            return self.flush()
        self.aligner.set_text_final_until(self.tracker.text_final_until())
        return self.people.apply(self.aligner.pull(now_s))

    def flush(self) -> StepBatch:
        """End of stream: every step that starts before its end. Steps are final up to the first
        segment still waiting for its words (all of them once none is); called again, it gives
        what words that came since changed."""
        self.ended |= self._expected
        self.tracker.flush()
        awaiting = self.tracker.awaiting_asr
        self.aligner.set_text_final_until(self.tracker.text_final_until() if awaiting else math.inf)
        return self.people.apply(self.aligner.flush())

    def reset(self) -> None:
        self.aligner.reset()
        self.tracker.reset()
        self.people.reset()
        self.ended.clear()

    def give_up_on_asr(self) -> int:
        """Speech recognition will not answer: segments still waiting for words close with none
        (their steps can become final). Returns how many there were."""
        return self.tracker.give_up_on_asr()

    def due_utterances(self) -> list[PendingUtterance]:
        """Utterances whose words are in and whose steps are all built and final, oldest first."""
        hop_s = self.aligner.options.hop_s
        return self.tracker.pop_due(self.aligner.next_seq * hop_s)

    @property
    def awaiting_asr(self) -> int:
        return self.tracker.awaiting_asr

    @property
    def pending(self) -> int:
        """Utterances not yet due (open, or waiting for words or final steps)."""
        return self.tracker.pending
