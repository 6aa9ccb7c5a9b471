"""Where published messages go: anything with `send(msg)` and `close()` (the ZeroMQ publisher,
the session recorder, the Lab Streaming Layer bridge). The pipeline sends every message to every
outlet and counts, but survives, an outlet that fails."""

from __future__ import annotations

from typing import Protocol

from contract import messages


class Outlet(Protocol):
    def send(self, msg: messages.Message) -> object: ...

    def close(self) -> None: ...
