"""Kill ``openmm-timewarp fit`` with SIGKILL partway, run the same command again, and report.

Prints the stage the kill hit, the processes of the killed run still alive 10 s after the kill,
the wall time before the kill plus the resumed run's (against the budget) and the check's
acceptance. Run by hand; the figures go into docs/fit.md.

Example::

    python benchmarks/fit_interrupt.py A --capped --minutes 30 --kill-at 600 -o runs/kill-md
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time


def descendants(pid: int):
    """Every process below ``pid`` (from /proc)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in os.listdir(f"/proc/{parent}/task") if os.path.isdir(f"/proc/{parent}/task") else []:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as handle:
                    children = [int(c) for c in handle.read().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--capped", action="store_true")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-at", type=float, required=True, help="seconds after the start")
    args = parser.parse_args()
    command = [sys.executable, "-m", "openmm_timewarp.cli", "fit", args.input, "-o", args.output, "--minutes",
               str(args.minutes), "--workers", str(args.workers), "--no-progress"] + (["--capped"] if args.capped else [])
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.perf_counter() - start < args.kill_at and process.poll() is None:
        time.sleep(0.5)
    if process.poll() is not None:
        sys.exit("the fit finished before the kill: choose an earlier --kill-at")
    children = descendants(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before_s = time.perf_counter() - start
    with open(os.path.join(args.output, "fit.json")) as handle:
        record = json.load(handle)
    running = sorted(record.get("running", {}))
    time.sleep(10.0)
    left = [pid for pid in children if alive(pid)]
    restart = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    after_s = time.perf_counter() - restart
    with open(os.path.join(args.output, "fit.json")) as handle:
        check = json.load(handle)["stages"]["check"]
    print(f"killed at {before_s:.0f} s in stage(s) {', '.join(running) or '?'}; {len(children)} child process(es), "
          f"{len(left)} alive 10 s later")
    print(f"wall time {before_s / 60:.1f} + {after_s / 60:.1f} = {(before_s + after_s) / 60:.1f} min "
          f"(budget {args.minutes:g} min)")
    print(f"check: acceptance {check['acceptance']:.3f}, visited {', '.join(check['visited'])}")


if __name__ == "__main__":
    main()
