"""StreamingT2V against the official outputs: every case of the shared fixture passes through the
real CLI, and a fixture with one perturbed reference fails (so the checker can fail)."""

from __future__ import annotations

import re

from safetensors.torch import load_file, save_file

from streaming_core.cli import main
from parity_output import case_lines

README_CASES = [  # every case the fixture README lists, plus our extra checks
    "architecture_from_shapes", "a_resampler", "clip_preprocess", "unit_apm_attn2", "unit_merger",
    "b_eps_cam_apm", "b_debug_cam_residuals", "b2_eps_cam_alpha0", "b3_eps_no_cam", "c_guidance_ddim_step",
    "d_cam_extension", "d_generator_draws",
]


def test_verify_fixture_passes_every_case(shared_dir, capsys):
    rc = main(["verify-fixture", str(shared_dir / "fixtures" / "st2v_parity")])
    out = capsys.readouterr().out
    cases = case_lines(out)
    assert rc == 0, out
    for name in README_CASES:
        assert cases.get(name) == "PASS", f"{name} missing or failed:\n{out}"
    assert f"{len(README_CASES) + 1} passed, 0 failed" in out


def test_tampered_fixture_fails(shared_dir, tmp_path, capsys):
    src = shared_dir / "fixtures" / "st2v_parity"
    dst = tmp_path / "st2v_tampered"
    dst.mkdir()
    for name in ("config.json", "io.json", "weights.safetensors"):
        (dst / name).symlink_to(src / name)
    io = load_file(str(src / "io.safetensors"))
    eps = io["out_b_eps_cam_apm"].clone()
    eps.view(-1)[123] += 0.01  # one element, 50x the case's max_rel tolerance
    io["out_b_eps_cam_apm"] = eps
    save_file(io, str(dst / "io.safetensors"))

    rc = main(["verify-fixture", str(dst)])
    out = capsys.readouterr().out
    cases = case_lines(out)
    assert rc == 1, out
    assert cases["b_eps_cam_apm"] == "FAIL"
    assert cases["a_resampler"] == "PASS" and cases["d_cam_extension"] == "PASS"
    assert re.search(r"\d+ passed, 1 failed", out)

