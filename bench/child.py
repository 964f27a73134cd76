"""The benchmarks' fresh processes: each measurement runs `python -m <module> --<role> <arg>` and prints its
figures as one JSON line, last; the parent reads that line back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Callable, Mapping


def run_child(module: str, *args: str, env: Mapping[str, str] | None = None) -> dict:
    """The figures one child printed; its error output in the exception when it failed."""
    out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                         env=dict(os.environ, HF_HUB_OFFLINE="1", **(env or {})))
    if out.returncode:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def serve(main: Callable[[], int], children: Mapping[str, Callable[[str], None]]) -> None:
    """A benchmark module's entry: `--<role> ARG` runs that child, anything else the parent's ``main``."""
    role = sys.argv[1][2:] if len(sys.argv) == 3 and sys.argv[1].startswith("--") else None
    if role in children:
        children[role](sys.argv[2])
        sys.exit(0)
    sys.exit(main())
