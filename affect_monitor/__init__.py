"""The command line: `affect-monitor` (the monitor, affect_monitor/cli.py; `python main.py` in a
checkout runs the same). The edge of the house: it may import every package, and none imports it."""
