"""Stream-DiffVSR against the official outputs: every case of the shared fixture passes through the
real CLI, and copies with one perturbed reference or one perturbed weight fail."""

from __future__ import annotations

import json
import re

from safetensors.torch import load_file, save_file

from streaming_core.cli import main
from parity_output import case_lines

FIXTURE_CASES = ["e2e_3frame", "bicubic_upscale", "raft_forward", "flow_warp", "temporal_decoder_tpm",
                 "unet_controlnet_step", "preprocess_floor4", "ddim_schedule"]


def test_verify_fixture_passes_every_case(shared_dir, capsys):
    rc = main(["verify-fixture", str(shared_dir / "fixtures" / "sdvsr_parity")])
    out = capsys.readouterr().out
    cases = case_lines(out)
    assert rc == 0, out
    for name in FIXTURE_CASES:
        assert cases.get(name) == "PASS", f"{name} missing or failed:\n{out}"
    assert f"{len(FIXTURE_CASES)} passed, 0 failed" in out


def _cheap_copy(src, dst, keep_cases):
    """A fixture copy with only the fast cases (the tamper tests need no RAFT-large run)."""
    dst.mkdir()
    (dst / "config.json").symlink_to(src / "config.json")
    cases = json.loads((src / "cases.json").read_text())
    cases["cases"] = [c for c in cases["cases"] if c["name"] in keep_cases]
    (dst / "cases.json").write_text(json.dumps(cases))
    return cases


def test_perturbed_reference_fails(shared_dir, tmp_path, capsys):
    src = shared_dir / "fixtures" / "sdvsr_parity"
    dst = tmp_path / "tampered_io"
    _cheap_copy(src, dst, {"flow_warp", "temporal_decoder_tpm"})
    (dst / "weights.safetensors").symlink_to(src / "weights.safetensors")
    io = load_file(str(src / "io.safetensors"))
    out_tpm = io["dec.out_tpm"].clone()
    out_tpm[0, 0, 5, 7] += 1e-3  # far below what eyes see, 50x the tolerance
    io["dec.out_tpm"] = out_tpm
    save_file(io, str(dst / "io.safetensors"))
    rc = main(["verify-fixture", str(dst)])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert case_lines(out) == {"flow_warp": "PASS", "temporal_decoder_tpm": "FAIL"}, out
    assert "1 passed, 1 failed" in out


def test_perturbed_tpm_weight_fails(shared_dir, tmp_path, capsys):
    """Changing only a TPM weight of the decoder (its temporal path) is detected."""
    src = shared_dir / "fixtures" / "sdvsr_parity"
    dst = tmp_path / "tampered_weights"
    _cheap_copy(src, dst, {"temporal_decoder_tpm"})
    (dst / "io.safetensors").symlink_to(src / "io.safetensors")
    weights = load_file(str(src / "weights.safetensors"))
    weights["vae.decoder.layers.12.alpha"] = weights["vae.decoder.layers.12.alpha"] + 0.05
    save_file(weights, str(dst / "weights.safetensors"))
    rc = main(["verify-fixture", str(dst), "--verbose"])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert re.search(r"FAIL\s+dec\.out_tpm", out), out
    assert re.search(r"PASS\s+dec\.out_no_tpm", out), out  # the frame-0 path does not use the TPM


def test_unknown_case_fails_instead_of_passing(shared_dir, tmp_path, capsys):
    src = shared_dir / "fixtures" / "sdvsr_parity"
    dst = tmp_path / "unknown_case"
    cases = _cheap_copy(src, dst, {"ddim_schedule"})
    cases["cases"].append({"name": "something_new", "inputs": {}, "outputs": {}})
    (dst / "cases.json").write_text(json.dumps(cases))
    for name in ("io.safetensors", "weights.safetensors"):
        (dst / name).symlink_to(src / name)
    rc = main(["verify-fixture", str(dst)])
    out = capsys.readouterr().out
    assert rc == 1 and case_lines(out) == {"ddim_schedule": "PASS", "something_new": "FAIL"}, out
