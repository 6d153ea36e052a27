"""Summarise a py-spy profile in collapsed-stack form (`py-spy record --format raw`).

Prints, per thread or over all of them, the share of samples in which each function is on the
stack (inclusive) and at the top (self), so a profile can be quoted as text:

    .venv/bin/py-spy record --format raw --threads -o /tmp/p.txt --pid <pid> --duration 20
    .venv/bin/python benchmarks/profile_summary.py /tmp/p.txt --top 30 [--thread engine-db] [--under readings_record]

`--under NAME` keeps only the stacks that pass through a frame whose function is NAME, and reports
shares of those; it also lists where NAME's time goes one call down (its direct callees, and
"(self)" for NAME's own code).
"""

import argparse
import collections
import re
import signal

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/", ".venv/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--thread", help="keep stacks whose thread frame contains this text")
    parser.add_argument("--under", help="keep stacks through a frame of this function name")
    args = parser.parse_args()

    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    children: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    total = 0
    with open(args.path) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            count = int(count)
            frames = stack.split(";")
            thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else ""
            if args.thread and args.thread not in thread:
                continue
            if args.under:
                names = [m["func"] if (m := _FRAME.match(f.strip())) else f for f in frames]
                if args.under not in names:
                    continue
                frames = frames[names.index(args.under):]
                children[_short(frames[1]) if len(frames) > 1 else "(self)"] += count
            total += count
            threads[thread] += count
            shorts = [_short(f) for f in frames if not f.startswith(("thread", "process"))]
            for name in set(shorts):
                inclusive[name] += count
            if shorts:
                own[shorts[-1]] += count
    print(f"{total} samples")
    if not args.under:
        for thread, count in threads.most_common(8):
            print(f"  {count / total:6.1%}  {thread}")
    if args.under:
        print(f"\n{args.under} one call down:")
        for name, count in children.most_common(args.top):
            print(f"  {count / total:6.1%}  {name}")
    print(f"\ninclusive (on the stack), top {args.top}:")
    for name, count in inclusive.most_common(args.top):
        print(f"  {count / total:6.1%}  {name}")
    print(f"\nself (top of the stack), top {args.top}:")
    for name, count in own.most_common(args.top):
        print(f"  {count / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
