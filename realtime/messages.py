"""The wire messages moved to contract/messages.py (they need nothing of the live pipeline); this
name re-exports them so subscribers written against `realtime.messages` keep working."""

from contract.messages import *  # noqa: F403
