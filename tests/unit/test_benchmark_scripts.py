"""benchmarks/cost.py --smoke and benchmarks/gpu.py --smoke run end to end on the CPU and write the
JSON the docs describe (issue 19). Only keys and consistency are checked: no timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = ("sd15", "memo_released")
PARTS = ("reference_net", "diffusion_net", "vae_decode", "vae_encode_motion_frames", "audio_encoder",
         "emotion_encoder", "total")
KINDS = ("temporal", "audio", "cross-attention", "spatial self-attention", "spatial transformer, rest", "resnets",
         "other", "reference attention")


def _run(script: str, *args: str, cwd: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEMO_ZOO_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"


@pytest.fixture(scope="module")
def cost_json(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cost")
    _run("cost.py", "--smoke", "--out", "cost.json", cwd=folder)
    return folder / "cost.json"


def test_cost_smoke_writes_every_part_kind_and_floor(cost_json):
    result = json.loads(cost_json.read_text())
    assert set(result["devices"]) == {"H100 SXM", "H200 SXM"}
    assert set(result["encoders"]) == {"vae_decode_per_frame", "vae_encode_per_frame", "audio_encoder_per_clip",
                                       "emotion_encoder_per_window"}
    for name in FAMILIES:
        family = result["families"][name]
        parts = family["per_frame"]["parts"]
        assert set(parts) == set(PARTS)
        assert parts["total"] == pytest.approx(sum(v for k, v in parts.items() if k != "total"))
        kinds = family["diffusion_net_per_step_by_kind"]
        assert set(kinds) == set(KINDS)
        assert sum(kinds.values()) == family["diffusion_net_per_step"]
        assert set(family["floor_s_per_frame"]) == set(result["devices"])
        assert family["reported_over_floor_h100"] > 0
    # the release's loop re-encodes its motion frames (Q17); the zoo's default does not
    assert result["families"]["memo_released"]["per_frame"]["parts"]["vae_encode_motion_frames"] > 0
    assert result["families"]["sd15"]["per_frame"]["parts"]["vae_encode_motion_frames"] == 0


def test_gpu_smoke_writes_every_figure(cost_json, tmp_path):
    # FVD only: FID's network takes ~20 s to build on a CPU; its branch differs by its config alone
    _run("gpu.py", "--smoke", "--cost", str(cost_json), "--metrics", "fvd", "--out", "gpu.json", cwd=tmp_path)
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["smoke"] is True and result["autocast"] == "bfloat16"
    for name in FAMILIES:
        family = result["families"][name]
        for key in ("measured_s_per_frame", "extrapolated_s_per_frame", "loop_achieved_tflops", "floor_s_per_frame",
                    "peak_memory_gib", "clips_timed"):
            assert key in family, (name, key)
        assert set(family["part_s"]) == set(family["achieved_tflops"]) == {"reference_net_per_clip",
                                                                            "diffusion_net_per_step"}
    assert set(result["encoders"]["part_s"]) == {"vae_decode_per_frame", "vae_encode_per_frame",
                                                 "audio_encoder_per_clip", "emotion_encoder_per_window"}
    fvd = result["metrics"]["by_metric"]["fvd"]
    assert set(fvd) == {"float32", "bfloat16"}
    assert fvd["float32"]["relative_difference_to_float32"] == 0.0
    assert {"videos_per_s", "frames_per_s", "distance", "update_s"} <= set(fvd["bfloat16"])


def test_gpu_refuses_counts_of_another_setting(cost_json, tmp_path):
    paper = json.loads(cost_json.read_text())
    paper["setting"]["latent_side"] = 64
    (tmp_path / "other.json").write_text(json.dumps(paper))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--cost", "other.json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "its setting is not this run's" in done.stderr
