"""check-keys: every official Stream-DiffVSR key maps with its shape, and a modified list fails."""

from __future__ import annotations

import json

from streaming_core.checkpoints.sdvsr import key_report
from streaming_core.cli import main


def test_check_keys_passes_on_the_official_list(shared_dir, capsys):
    rc = main(["check-keys", str(shared_dir / "specs" / "stream_diffvsr_expected_keys.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    for part, n in (("unet", 686), ("controlnet", 336), ("vae", 166)):
        assert f"{n}/{n} entries map exactly" in out and f"stream_diffvsr.{part}" in out, out


def test_check_keys_fails_on_a_modified_list(shared_dir, tmp_path, capsys):
    spec = json.loads((shared_dir / "specs" / "stream_diffvsr_expected_keys.json").read_text())
    spec["vae"]["keys"]["decoder.layers.12.temporal_processor.0.weight"] = [64, 64, 5]  # other kernel size
    spec["vae"]["keys"]["decoder.layers.12.bogus.weight"] = [3]
    del spec["controlnet"]["keys"]["controlnet_mid_block.bias"]
    path = tmp_path / "modified_keys.json"
    path.write_text(json.dumps(spec))
    rc = main(["check-keys", str(path)])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "FAILED" in out and "decoder.layers.12.bogus.weight" in out, out


def test_full_size_parts_have_the_documented_sizes(shared_dir):
    """Configs inferred from the shapes alone (no config.json) give the official hidden values and
    the spec's parameter counts (472,374,020 / 207,699,264)."""
    import torch

    from streaming_core.checkpoints.sdvsr_configs import controlnet_config, unet_config
    from streaming_core.models.sdvsr.denoiser import build_controlnet, build_unet

    spec = json.loads((shared_dir / "specs" / "stream_diffvsr_expected_keys.json").read_text())
    unet = unet_config(spec["unet"]["keys"], None)
    assert unet["attention_head_dim"] == 8 and unet["norm_num_groups"] == 32
    assert unet["only_cross_attention"][1:] == [True, True, False] and unet["in_channels"] == 7
    cn = controlnet_config(spec["controlnet"]["keys"], None)
    assert cn["conditioning_embedding_out_channels"] == [64, 128, 256]
    with torch.device("meta"):
        sizes = [sum(p.numel() for p in m.parameters()) for m in (build_unet(unet), build_controlnet(cn))]
    assert sizes == [472374020, 207699264]
    assert all(r.ok for r in key_report(spec))
