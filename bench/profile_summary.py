"""Summarise a py-spy raw (collapsed stacks) profile:

    python -m bench.profile_summary bench/results/profile-...txt [--top 40] [--under NAME]
    python -m bench.profile_summary FILE --callers NAME     (who calls NAME, a few frames up)

Prints samples per thread, then the functions with the most inclusive and self samples."""

from __future__ import annotations

import argparse
import collections
import re

_LINE = re.compile(r":\d+\)")


def _frames(stack: str) -> list[str]:
    return [
        re.sub(r" \((.*?)\)", lambda m: " (" + m.group(1).split("site-packages/")[-1] + ")", f)
        for f in stack.split(";")
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--under", help="only stacks through a frame containing this")
    parser.add_argument("--callers", help="show who calls the frame containing this")
    parser.add_argument("--depth", type=int, default=6)
    args = parser.parse_args()

    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    callers: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.path) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = _frames(stack)
            if args.under and not any(args.under in f for f in frames):
                continue
            total += n
            first = 1 if frames[0].startswith("process ") else 0
            if frames[first].startswith("thread "):
                threads[frames[first][:60]] += n
                first += 1
            body = [_LINE.sub(")", f) for f in frames[first:]]
            for f in set(body):
                inclusive[f] += n
            if body:
                own[body[-1]] += n
            if args.callers:
                for i, f in enumerate(frames):
                    if args.callers in f:
                        chain = reversed(frames[max(first, i - args.depth) : i + 1])
                        callers[" <- ".join(chain)] += n
                        break
    print(f"samples: {total}")
    if args.callers:
        for chain, n in callers.most_common(args.top):
            print(f"{n:6d} {100 * n / max(total, 1):5.1f}%  {chain[:700]}\n")
        return
    for name, n in threads.most_common(12):
        print(f"{n:6d} {100 * n / max(total, 1):5.1f}%  {name}")
    print("--- inclusive")
    for name, n in inclusive.most_common(args.top):
        print(f"{n:6d} {100 * n / max(total, 1):5.1f}%  {name[:150]}")
    print("--- self")
    for name, n in own.most_common(args.top):
        print(f"{n:6d} {100 * n / max(total, 1):5.1f}%  {name[:150]}")


if __name__ == "__main__":
    main()
