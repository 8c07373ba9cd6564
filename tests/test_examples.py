"""The runnable examples: --help teaches, and the take -> glTF script makes a file pygltflib reads."""

import subprocess
import sys
from pathlib import Path

import pygltflib
import pytest
from conftest import ROOT, shared_path

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_help(script):
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage" in r.stdout.lower()


def test_take_to_gltf(tmp_path: Path):
    take = shared_path("arkit_blendshape_takes", "livelinkface_MySlate_3_JMTechArt.csv")
    out = tmp_path / "take.glb"
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "take_to_gltf.py"), str(take), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    g = pygltflib.GLTF2().load(str(out))
    assert len(g.meshes[0].extras["targetNames"]) == 52
    paths = {c.target.path for c in g.animations[0].channels}
    assert "weights" in paths and "rotation" in paths
    times = g.accessors[g.animations[0].samplers[0].input]
    assert times.count == 328
