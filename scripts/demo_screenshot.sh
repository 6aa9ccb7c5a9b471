#!/usr/bin/env bash
# docs/demo-run.png: a real run of the demo (`main.py --demo --headless`) with the dashboard
# (`python -m ui`) connected to it, grabbed offscreen after the run of SECONDS (default 50) has
# ended (the window holds its last state; models load within the extra 45 s).
# Rerun after a new checkpoint or a dashboard change, like `make figures`.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_SHOWN=${1:-50}
PY=.venv/bin/python
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ENDPOINT="tcp://127.0.0.1:${PORT}"
QT_QPA_PLATFORM=offscreen $PY -m ui --connect "$ENDPOINT" --duration "$((SECONDS_SHOWN + 45))" \
    --screenshot docs/demo-run.png &
UI=$!
sleep 3  # the dashboard subscribes before the first message
$PY main.py --demo --headless --publish "$ENDPOINT" --duration "$SECONDS_SHOWN" >/dev/null
wait "$UI"
echo "wrote docs/demo-run.png"
