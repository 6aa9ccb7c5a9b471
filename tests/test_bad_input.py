"""Bad input through main.py: every case ends with one clear line on stderr and a non-zero exit,
before any feature model loads. Most cases call main() in this process (the same code path, a
second each); one runs main.py as a subprocess to prove the exit code and stderr end to end."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import main as cli
from msrg.checkpoint import save_checkpoint
from msrg.config import PRESETS
from msrg.model import MSRG

ROOT = Path(__file__).resolve().parent.parent


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    torch.manual_seed(0)
    out = {
        "checkpoint": save_checkpoint(MSRG().eval(), folder / "good.pt"),
        "mosi.pt": save_checkpoint(MSRG(PRESETS["mosi"]).eval(), folder / "mosi.pt"),
        "corrupt.pt": folder / "corrupt.pt",
        "garbage.mp4": folder / "garbage.mp4",
    }
    good = out["checkpoint"].read_bytes()
    out["corrupt.pt"].write_bytes(good[: len(good) // 2])  # a copy cut short
    out["garbage.mp4"].write_bytes(bytes(range(256)) * 16)
    if shutil.which("ffmpeg"):
        srt = folder / "subs.srt"
        srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
        out["subs.mkv"] = folder / "subs.mkv"
        _ffmpeg("-i", str(srt), "-c:s", "srt", str(out["subs.mkv"]))
        out["4khz.wav"] = folder / "4khz.wav"
        _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=4000", "-t", "1",
                str(out["4khz.wav"]))  # fmt: skip
    return out


@pytest.fixture
def run_main(capsys):
    """main(argv) -> (exit code, stderr lines); restores the signal handlers main() installs."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def run(*argv: str) -> tuple[int, list[str]]:
        code = cli.main(["--headless", *argv])
        return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]

    yield run
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--demo", "--step-hz", "0"], "--step-hz"),
        (["--demo", "--step-hz", "-10"], "--step-hz"),
        (["--demo", "--step-hz", "inf"], "--step-hz"),
        (["--demo", "--pause-ms", "0"], "--pause-ms"),
        (["--demo", "--pause-ms", "-600"], "--pause-ms"),
        (["--demo", "--duration", "-1"], "--duration"),
        (["--demo", "--duration", "0"], "--duration"),
        (["--demo", "--partial-asr-s", "-1"], "--partial-asr-s"),
        (["--demo", "--max-faces", "0"], "--max-faces"),
        (["--demo", "--max-faces", "two"], "--max-faces"),
        (["--demo", "--max-faces", "5"], "--max-faces"),
        (["--demo", "--record-media"], "--record-media needs --record"),
        (["--demo", "--asr-model", "large"], "--asr-model must be one of base, small, tiny.en"),
        (["--camera", "-1"], "--camera"),
        (["--demo", "--camera", "0"], "choose one input"),
        ([], "no input"),
    ],
)
def test_invalid_cli_values_exit_2_with_one_line(run_main, argv, expected) -> None:
    code, err = run_main(*argv)
    assert code == 2 and len(err) == 1 and expected in err[0], err


@pytest.mark.parametrize(("device", "named"), [("99", "input device 99"),
                                              ("no-such-microphone-xyz", "'no-such-microphone-xyz'")])
def test_missing_microphone_exits_1_with_one_line(run_main, device, named) -> None:
    """An index or a name that no machine has: the one-line error comes from the device check
    before the models load, whatever devices this machine lists."""
    code, err = run_main("--mic", device, "--publish", f"tcp://127.0.0.1:{_free_port()}")
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("error: cannot open ") and named in err[0], err
    assert "--list-devices" in err[0], err


def test_unparseable_numbers_are_refused_by_argparse(run_main) -> None:
    with pytest.raises(SystemExit) as info:
        run_main("--demo", "--step-hz", "fast")
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("name", "expected"),
    [("missing.mp4", "not found"), ("garbage.mp4", "could not be read"),
     ("subs.mkv", "no video or audio"), ("4khz.wav", "4000 Hz")],
)  # fmt: skip
def test_unusable_media_files_exit_1_with_one_line(run_main, files, tmp_path, name,
                                                   expected) -> None:  # fmt: skip
    if name not in files and name != "missing.mp4":
        pytest.skip("needs ffmpeg to make the file")
    path = files.get(name, tmp_path / name)
    code, err = run_main("--video", str(path), "--checkpoint", str(files["checkpoint"]),
                         "--publish", f"tcp://127.0.0.1:{_free_port()}")  # fmt: skip
    assert code == 1 and len(err) == 1 and expected in err[0] and str(path) in err[0], err


@pytest.mark.parametrize(
    ("name", "expected"),
    [("nothing.pt", "does not exist"), ("corrupt.pt", "corrupted"),
     ("mosi.pt", "live feature extractors")],
)  # fmt: skip
def test_bad_checkpoints_exit_1_with_one_line(run_main, files, tmp_path, name, expected) -> None:
    path = files.get(name, tmp_path / name)
    code, err = run_main("--demo", "--checkpoint", str(path), "--engine", "eager",
                         "--publish", f"tcp://127.0.0.1:{_free_port()}")  # fmt: skip
    assert code == 1 and len(err) == 1 and expected in err[0], err


def test_port_in_use_exits_1_with_one_line(run_main, files) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run_main("--demo", "--checkpoint", str(files["checkpoint"]),
                             "--publish", f"tcp://127.0.0.1:{port}")  # fmt: skip
    assert code == 1 and len(err) == 1 and "in use" in err[0], err


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [("tcp://127.0.0.1", "not a ZeroMQ endpoint"), ("udp://127.0.0.1:5556", "not a ZeroMQ"),
     ("tcp://127.0.0.1:70000", "not a ZeroMQ"), ("tcp://0.0.0.0:5556", "--curve-keys")],
)  # fmt: skip
def test_bad_endpoints_exit_1_with_one_line(run_main, files, endpoint, expected) -> None:
    code, err = run_main("--demo", "--checkpoint", str(files["checkpoint"]), "--publish", endpoint)
    assert code == 1 and len(err) == 1 and expected in err[0], err


def test_subprocess_reports_one_line_and_exit_code(files, tmp_path) -> None:
    missing = tmp_path / "nowhere.mp4"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--video", str(missing), "--headless"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and lines == [f"error: media file {missing} not found; "
                                              "check the path (or try --demo)"], proc.stderr  # fmt: skip
