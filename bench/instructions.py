"""Instructions per chat turn, in-process: `bench.turn_cost` under valgrind's callgrind.

    python -m bench.instructions [--history 50] [--turns 100]    (any other turn_cost option too)

CPU time on a shared machine moves by ±20 % between runs; an instruction count does not (the
same code and inputs give the same count to about ±0.2 %, whatever else runs), so a change of a
few percent shows in one A/B pair: run it in two checkouts (`git worktree`) with the same
options. Only the first measured run of `bench.turn_cost` (after its warm-up) is counted: start-up,
migrations and seeding are not (callgrind starts with collection off, and this process turns it
on and off with `callgrind_control` around that run). Needs valgrind (`apt-get install valgrind`);
a run takes about a minute for 100 turns. Counts user-space instructions of this process only:
not the kernel's work for its system calls, nor PostgreSQL's, nor the stand-in's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

INSIDE = "BENCH_INSTRUCTIONS_INSIDE"


def _inside() -> None:
    """Under valgrind: bench.turn_cost with collection on for its first measured run."""
    from bench import turn_cost

    measure = turn_cost.run
    runs = 0

    def collect(flag: str) -> None:
        subprocess.run(["callgrind_control", "-i", flag, str(os.getpid())], capture_output=True)

    async def counted(args, *rest, **kwargs):
        nonlocal runs
        runs += 1
        if runs != 2:  # the first is the warm-up
            return await measure(args, *rest, **kwargs)
        collect("on")
        try:
            return await measure(args, *rest, **kwargs)
        finally:
            collect("off")

    turn_cost.run = counted
    sys.argv = ["bench.turn_cost", *sys.argv[1:], "--repeat", "1"]
    turn_cost.main()


def main() -> None:
    if os.environ.get(INSIDE):
        _inside()
        return
    if "-h" in sys.argv or "--help" in sys.argv:
        print(__doc__)
        return
    if not shutil.which("valgrind"):
        sys.exit("needs valgrind: apt-get install valgrind")
    turns = 400  # bench.turn_cost's default
    for i, arg in enumerate(sys.argv):
        if arg.startswith("--turns"):
            turns = int(arg.split("=", 1)[1] if "=" in arg else sys.argv[i + 1])
    with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp:
        out = os.path.join(tmp, "callgrind.out")
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "bench.instructions",
                *sys.argv[1:],
            ],
            env={**os.environ, INSIDE: "1", "PYTHONPATH": os.getcwd()},
            capture_output=True,
            text=True,
        )
        print(done.stdout, end="")
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode or not found:
            sys.exit(f"valgrind failed:\n{done.stderr[-3000:]}")
    total = int(found.group(1))
    print(f"{total / turns / 1e6:.3f} M instructions per turn ({total:,} for {turns} turns)")


if __name__ == "__main__":
    main()
