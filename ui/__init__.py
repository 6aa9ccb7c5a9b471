"""PyQt6 dashboard that subscribes to the affect stream (`python -m ui --connect ENDPOINT`)."""
