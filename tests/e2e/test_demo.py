"""`mlbot demo` as a new user runs it: a fresh process, a fresh home, the installed command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_validates_stores_and_refuses_as_a_user_would_see(tmp_path: Path) -> None:
    env = dict(os.environ, MLBOT_HOME=str(tmp_path / "home"))
    mlbot = Path(sys.executable).with_name("mlbot")
    done = subprocess.run([str(mlbot), "demo"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Stored image dataset 'fashion'" in out and "Stored sentiment dataset 'reviews'" in out
    assert "The dataset was not stored: 4 problems to fix." in out
    assert "not UTF-8" in out and "already used by another member" in out
    assert "Demo finished" in out
    listing = subprocess.run([str(mlbot), "datasets", "--json"], capture_output=True, text=True, timeout=60,
                             env=dict(env, MLBOT_HOME=str(tmp_path / "home" / "demo"), MLBOT_USER="demo"))
    assert listing.returncode == 0 and '"name": "fashion"' in listing.stdout and '"name": "reviews"' in listing.stdout
