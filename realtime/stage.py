"""One lifecycle for every streaming stage: push, flush, reset, close.

    out = stage.push(item)  # one input in; what the stage can already give back for it
    owed = stage.flush()    # the input has ended: what the stage held back waiting for more
    stage.reset()           # forget the stream (a new one follows); models and handles are kept
    stage.close()           # release threads and native handles; idempotent, and final

- push returns what the input alone makes final: a face observation per frame, the voice frames
  openSMILE has finished, a probability per complete VAD chunk, segment events. It may be empty.
  A stage with several kinds of input takes them as the typed events of realtime/stream_events.py.
- A stage whose output also waits on the caller's clock (the aligner holds a step until every
  modality is in, or one is late by the caller's stream time; an utterance is due once its steps
  are final) returns nothing from push and gives that output from a method that takes the time
  (`pull`, `pop_due`): the stage itself has no clock, so tests choose the times.
- flush is the end of the input, not of the object: reset (or a stage that resets itself at
  flush) makes it ready for another stream. flush gives the kind of result the stage's output
  does (push's, or pull's for the aligner), empty when nothing was held back; a stage that
  never holds anything back (the face sampler, the tracker) gives None.
- close releases what the stage opened (openSMILE's run thread and handle, an ONNX session). It
  may be called any number of times and on every way out (normal end, error, stop); `with stage:`
  calls it. A closed stage is not used again; one that held a model or a handle says so (push
  raises). A stage never closes what it was handed (the shared face extractor, the engine):
  whoever made it closes it.

The models behind the stages (FaceExtractor.process, SpeechRecognizer.transcribe,
WordEmbedder.embed_words) keep nothing from one call to the next, so they are plain calls, not
stages, and one instance serves every stream (realtime.extractors.Extractors).

Stages: SileroVad, SpeechSegmenter (extractors/vad.py), VoiceExtractor (extractors/voice.py),
FaceSampler (extractors/face.py), AudioFrontEnd (audio_frontend.py), Aligner (aligner.py),
UtteranceTracker (utterances.py), StepAssembler (step_assembler.py), StepRunner (stepper.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

In = TypeVar("In")


class Stage(ABC, Generic[In]):
    """A streaming stage; what push and flush give is each stage's own (see the module)."""

    @abstractmethod
    def push(self, item: In) -> object:
        """One input; returns what can already be given for it (maybe nothing)."""

    @abstractmethod
    def flush(self) -> object:
        """End of input: what was held back for more input (None if a stage never holds any)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the stream and keep the resources, ready for a new stream."""

    def close(self) -> None:
        """Release what the stage opened; idempotent. By default a stage opens nothing."""

    def __enter__(self):  # noqa: ANN204 - the subclass itself
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
