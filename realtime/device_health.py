"""Whether each live device is delivering: when its records last left it, and since when it is open.

A device that has delivered and then goes quiet for `lost_after_s` is lost. A device that has
delivered nothing yet is starting up, not lost, until its start-up grace has passed (a microphone
may take a second or two to deliver its first block): after that, "nothing since it opened" is
reported like any other loss. Time stamps are `time.monotonic()`; `now` can be passed to check a
moment exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class DeliveryWatch:
    lost_after_s: float
    # kind -> how long a device may deliver nothing after opening (at least lost_after_s)
    startup_grace_s: dict[str, float] = field(default_factory=dict)
    opened_at: float = field(default_factory=time.monotonic)
    last: dict[str, float] = field(default_factory=dict)  # kind -> last delivery (once any)

    def delivered(self, kind: str, now: float | None = None) -> None:
        self.last[kind] = time.monotonic() if now is None else now

    def silent(self, kind: str, now: float | None = None) -> bool:
        """True when `kind` counts as lost at `now`."""
        now = time.monotonic() if now is None else now
        if kind in self.last:
            return now - self.last[kind] > self.lost_after_s
        return now - self.opened_at > self._grace(kind)

    def _grace(self, kind: str) -> float:
        return max(self.lost_after_s, self.startup_grace_s.get(kind, 0.0))

    def loss_message(self, device: str, kind: str, absent: str) -> str:
        if kind in self.last:
            cause = f"nothing for {self.lost_after_s:.1f} s"
        else:
            cause = (f"nothing since it opened ({self._grace(kind):.1f} s; muted, held by another program "
                     "or the wrong device?)")  # fmt: skip
        return f"{device} lost: {cause}; steps go on with {absent} marked absent"
