"""`python main.py ...` in a checkout: the same command as the installed `affect-monitor`
(the code is affect_monitor/cli.py)."""

from affect_monitor.cli import build_parser, main, options_from, run

__all__ = ["build_parser", "main", "options_from", "run"]

if __name__ == "__main__":
    run()
