"""``python -m didban.lab.censor --state-dir DIR``: run the censor engine (inside the isp
namespace, as root) on the lab whose state lives in DIR."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from didban.lab.censor.engine import main


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m didban.lab.censor",
        description="The lab's censor engine (run inside the isp namespace).",
    )
    parser.add_argument("--state-dir", required=True, type=Path,
                        help="lab state directory holding lab.json and profile.json")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.state_dir.is_dir():
        print(f"censor: state directory {args.state_dir} does not exist", file=sys.stderr)
        return 2
    return main(args.state_dir)


if __name__ == "__main__":
    sys.exit(cli())
