"""Create CurveZMQ keys for publishing beyond loopback.

    python -m realtime.keys DIR [--clients N]

DIR/server.key + server.key_secret: the publisher's pair (--curve-keys DIR).
DIR/clients/client-K.key: public keys the publisher accepts (copy more here to admit others).
DIR/client-K.key_secret: each subscriber's pair, given to the dashboard with
  python -m ui --connect tcp://HOST:PORT --curve-server-key DIR/server.key --curve-client-key DIR/client-K.key_secret
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from zmq.auth import create_certificates


def make_keys(folder: Path, clients: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "clients").mkdir(exist_ok=True)
    if not (folder / "server.key_secret").exists():
        create_certificates(str(folder), "server")
    for k in range(1, clients + 1):
        name = f"client-{k}"
        if not (folder / f"{name}.key_secret").exists():
            create_certificates(str(folder), name)
        shutil.copy(folder / f"{name}.key", folder / "clients" / f"{name}.key")
    # Secret keys admit their holder to the stream: readable by this user only.
    folder.chmod(0o700)
    for secret in folder.glob("*.key_secret"):
        secret.chmod(0o600)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m realtime.keys", description=__doc__.splitlines()[1]
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--clients", type=int, default=1)
    args = parser.parse_args(argv)
    make_keys(args.folder, args.clients)
    print(f"keys in {args.folder}: publish with --curve-keys {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
