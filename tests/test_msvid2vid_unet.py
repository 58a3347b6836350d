"""MS-Vid2Vid-XL's UNet: official key coverage, parity with the official code, the size rule, dtypes."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from streaming_core.checkpoints.msvid2vid import (
    build_unet_from_official,
    key_report,
    official_state_dict,
    official_to_ours,
)
from streaming_core.cli import main
from streaming_core.models.msvid2vid import fit_latent_size, latent_size_ok
from streaming_core.sampling.guided_model import guided_chunk_model
from streaming_core.tiny.enhancer import build_tiny_msvid2vid_unet
from parity_output import case_lines

FIXTURE = "msvid2vid_parity"



# -- keys ---------------------------------------------------------------------------------------------
def test_check_keys_maps_all_1480_official_entries(shared_dir, capsys):
    spec = json.loads((shared_dir / "specs" / "ms_vid2vid_xl_unet_keys.json").read_text())
    report = key_report(spec)
    assert report.ok and report.expected == 1480
    assert main(["check-keys", str(shared_dir / "specs" / "ms_vid2vid_xl_unet_keys.json")]) == 0
    assert "1480/1480 entries map exactly" in capsys.readouterr().out


def test_check_keys_fails_on_a_modified_list(shared_dir, tmp_path, capsys):
    spec = json.loads((shared_dir / "specs" / "ms_vid2vid_xl_unet_keys.json").read_text())
    entries = spec["entries"]
    for e in entries:
        if e["key"] == "output_blocks.5.2.proj_in.weight":
            e["shape"] = [640, 640, 3]  # a Conv1d of kernel 3: not the official layout
        if e["key"] == "middle_block.1.transformer_blocks.0.attn2.to_k.weight":
            e["key"] = "middle_block.1.transformer_blocks.0.attn2.to_kk.weight"
    spec["entries"] = [e for e in entries if e["key"] != "out.2.bias"]
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(spec))
    report = key_report(spec)
    assert not report.ok
    assert "out.2.bias" in report.unexpected  # our model has it, the list no longer does
    assert "middle_block.1.transformer_blocks.0.attn2.to_kk.weight" in report.missing
    assert any(k == "output_blocks.5.2.proj_in.weight" for k, _, _ in report.mismatched)
    assert main(["check-keys", str(path)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_official_key_layout_round_trips_through_the_loader():
    unet = build_tiny_msvid2vid_unet(seed=3)
    official = official_state_dict(unet)
    assert any("temopral_conv" in k for k in official) and not any(k.startswith("down_blocks") for k in official)
    assert official["input_blocks.0.1.proj_in.weight"].ndim == 3  # Conv1d k=1 in the official layout
    assert set(official_to_ours(official)) == set(unet.state_dict())
    loaded = build_unet_from_official(official)
    x, t, y = torch.randn(1, 4, 4, 6, 8), torch.tensor([321]), torch.randn(1, 77, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x, t, y), unet(x, t, y))


# -- parity with the official code ----------------------------------------------------------------------
def test_verify_fixture_passes_every_case(shared_dir, capsys):
    rc = main(["verify-fixture", str(shared_dir / "fixtures" / FIXTURE)])
    out = capsys.readouterr().out
    cases = case_lines(out)
    expected = [c["name"] for c in json.loads((shared_dir / "fixtures" / FIXTURE / "cases.json").read_text())["cases"]]
    assert set(expected) == {"a1_unet_forward", "a2_unet_forward_batch2", "a3_unet_trace", "b1_guidance_unet",
                             "b2_guidance_synthetic", "s0_noise_schedule", "c1_sampler_3steps", "c2_sampler_30steps"}
    for name in expected:
        assert cases.get(name) == "PASS", f"{name} missing or failed:\n{out}"
    assert rc == 0 and f"{len(expected)} passed, 0 failed" in out


def _fast_copy(shared_dir, tmp_path, keep=("a3_unet_trace", "b1_guidance_unet", "b2_guidance_synthetic",
                                          "s0_noise_schedule")):
    """The fixture with only its quick cases (the weights and tensors are copied unchanged)."""
    src, dst = shared_dir / "fixtures" / FIXTURE, tmp_path / FIXTURE
    dst.mkdir()
    for name in ("config.json", "weights.safetensors", "io.safetensors"):
        shutil.copy(src / name, dst / name)
    cases = json.loads((src / "cases.json").read_text())
    cases["cases"] = [c for c in cases["cases"] if c["name"] in keep]
    (dst / "cases.json").write_text(json.dumps(cases))
    return dst


def test_tampered_fixture_fails(shared_dir, tmp_path, capsys):
    dst = _fast_copy(shared_dir, tmp_path)
    io = load_file(str(dst / "io.safetensors"))
    io["a3.trace.output_blocks.4"] = io["a3.trace.output_blocks.4"] + 1e-3  # one block of the trace
    io["b2.x0"] = io["b2.x0"].clone()
    io["b2.x0"][1, 0, 0, 0, 0] += 1e-3  # one element of one sample
    save_file(io, str(dst / "io.safetensors"))
    rc = main(["verify-fixture", str(dst)])
    cases = case_lines(capsys.readouterr().out)
    assert rc == 1
    assert cases == {"a3_unet_trace": "FAIL", "b1_guidance_unet": "PASS", "b2_guidance_synthetic": "FAIL",
                     "s0_noise_schedule": "PASS"}


def test_schedule_check_is_as_tight_as_the_float32_noise_allows(shared_dir, tmp_path, capsys):
    """The schedule tolerance sits at the float32 noise floor (see SCHEDULE_SIGMA_ATOL), yet still
    catches a 1e-5 error in alpha where alpha is well conditioned and a 1e-4 error in one sigma."""
    for key, index, delta in [("schedule.alpha_vp", 100, 1e-5), ("schedule.sigma_vp", 500, 1e-4)]:
        (tmp_path / key).mkdir()
        dst = _fast_copy(shared_dir, tmp_path / key, keep=("s0_noise_schedule",))
        io = load_file(str(dst / "io.safetensors"))
        io[key] = io[key].clone()
        io[key][index] += delta
        save_file(io, str(dst / "io.safetensors"))
        assert main(["verify-fixture", str(dst)]) == 1, key
        assert case_lines(capsys.readouterr().out) == {"s0_noise_schedule": "FAIL"}


def test_tampered_weights_fail_the_unet_case(shared_dir, tmp_path, capsys):
    dst = _fast_copy(shared_dir, tmp_path, keep=("a3_unet_trace",))
    weights = load_file(str(dst / "weights.safetensors"))
    key = "output_blocks.8.3.conv.bias"  # the last upsampler: only the decoder end of the trace moves
    weights[key] = weights[key] + 0.01
    save_file(weights, str(dst / "weights.safetensors"))
    assert main(["verify-fixture", str(dst), "--verbose"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  trace.output_blocks.8" in out and "PASS  trace.output_blocks.7" in out


# -- the official latent-size rule ------------------------------------------------------------------------
def test_size_rule_and_padding_around_the_unet():
    unet = build_tiny_msvid2vid_unet()  # three levels: two downsamples, so H % 4 == 2 and W % 4 == 0
    y, t = torch.randn(1, 77, 32), torch.tensor([500])
    with torch.no_grad():
        for h, w in [(6, 4), (10, 8), (2, 12)]:
            assert latent_size_ok(h, w, 2)
            assert unet(torch.randn(1, 4, 2, h, w), t, y).shape == (1, 4, 2, h, w)
        for h, w in [(8, 8), (6, 6)]:
            assert not latent_size_ok(h, w, 2)
            with pytest.raises(RuntimeError):
                unet(torch.randn(1, 4, 2, h, w), t, y)
    assert fit_latent_size(90, 160) == (90, 160) and fit_latent_size(90, 90) == (90, 96)  # 720x720 unpadded
    assert fit_latent_size(8, 6, 2) == (10, 8)
    model = guided_chunk_model(lambda x, tt, c: unet(x, tt, c), y, torch.randn(1, 77, 32), 7.5, 0.2,
                               size_rule=lambda h, w: fit_latent_size(h, w, 2))
    with torch.no_grad():
        out = model(torch.randn(1, 4, 3, 8, 6), 500)
    assert out.shape == (1, 4, 3, 8, 6) and torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_unet_runs_in_half_precision(dtype):
    unet = build_tiny_msvid2vid_unet()
    x, t, y = torch.randn(1, 4, 3, 6, 8), torch.tensor([400]), torch.randn(1, 77, 32)
    with torch.no_grad():
        ref = unet(x, t, y)
        out = unet.to(dtype)(x.to(dtype), t, y.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    tol = 0.05 if dtype == torch.float16 else 0.2
    assert (out.float() - ref).abs().max() <= tol * ref.abs().max()
