"""Parity runner for fixtures of kind ``streamingt2v`` (shared/fixtures/st2v_parity/README.md).

The model is built from the fixture's weights alone (architecture from tensor shapes, float32), and
every number of a case (timesteps, guidance, eta, DDIM config, step counts, unit-case modules, frame
counts, CLIP input size) is read from config.json / io.json, so other seeds and tiny configs of the
same format run unchanged. As in the fixture, the ViT-H tower is replaced by a lookup of the given
CLIP embeddings (after our real preprocessing) and the text encoder is bypassed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..checkpoints.files import load_state_dict
from ..checkpoints.st2v import build_streamingt2v
from ..models.attention import APMCrossAttention
from ..models.clip_image import clip_preprocess
from ..models.streamingt2v import StreamingT2V
from ..pipelines.extend import ExtendConditioning, ExtensionSettings, StepInfo, draw_official_noise, extend_chunk
from ..sampling.ddim import ddim_prev_timestep, ddim_step
from ..sampling.guidance import cfg
from ..schedules.discrete import DiscreteVPSchedule
from .report import NORMAL_DRAW_ATOL, CaseResult, combine, compare, guarded


class _ClipLookup(nn.Module):
    """Stands in for the ViT-H tower as the fixture did: our preprocessing runs for real, then the
    grey (all-zero) frame gets the recorded grey embedding and any other frame the anchor's."""

    def __init__(self, anchor: torch.Tensor, grey: torch.Tensor, image_size: int):
        super().__init__()
        self.anchor, self.grey = anchor.reshape(-1), grey.reshape(-1)
        self.image_size = image_size
        self._device_probe = nn.Parameter(torch.zeros(()), requires_grad=False)
        self.inputs: list[tuple[torch.Tensor, bool]] = []  # (preprocessed frame, looked up as grey)

    @property
    def config(self):
        return self  # the container reads ``config.image_size``

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = clip_preprocess(pixels, self.image_size)
        grey = clip_preprocess(torch.zeros_like(pixels[:1]), self.image_size)[0]
        out = []
        for row in x:
            is_grey = torch.equal(row, grey)
            self.inputs.append((row, is_grey))
            out.append(self.grey if is_grey else self.anchor)
        return torch.stack(out).to(x)


class _Fixture:
    def __init__(self, fixture_dir: Path, device: str):
        from safetensors.torch import load_file

        self.dir = fixture_dir
        self.device = device
        self.config = json.loads((fixture_dir / "config.json").read_text())
        self.io_meta = json.loads((fixture_dir / "io.json").read_text())
        self.io = load_file(str(fixture_dir / "io.safetensors"))
        sd = load_state_dict(fixture_dir / "weights.safetensors")
        self.model: StreamingT2V = build_streamingt2v(
            sd, components=("unet", "cam", "resampler"), dtype=torch.float32, device=device,
            source=str(fixture_dir / "weights.safetensors"))
        sched = self.config["scheduler"]
        c = sched["config"]
        self.schedule = DiscreteVPSchedule.from_betas(
            c["num_train_timesteps"], c["beta_start"], c["beta_end"], c["beta_schedule"],
            prediction_type=c["prediction_type"], set_alpha_to_one=c["set_alpha_to_one"],
            timestep_spacing=sched.get("timestep_spacing", "leading").split()[0], steps_offset=c["steps_offset"])
        self.eta = float(sched["eta"])
        self.guidance = float(self.config["guidance"]["scale"])
        cam = self.config["cam"]
        self.num_frames = int(cam["num_frames_generated"])
        self.cam_frames = int(cam["num_conditioning_frames"])

    # -- io helpers ------------------------------------------------------------------------------
    def t(self, name: str) -> torch.Tensor:
        return self.io[name].to(self.device)

    def check(self, name: str, ours: torch.Tensor, ref_name: str | None = None) -> CaseResult:
        ref_name = ref_name or name
        tol = self.io_meta["tensors"][ref_name]["tolerance"]
        return compare(ref_name, ours.detach().float().cpu(), self.io[ref_name],
                       max_rel=tol["max_abs_diff_over_1_plus_abs_ref"], rel_l2=tol["rel_l2"])

    # -- shared inputs ---------------------------------------------------------------------------
    def prev_chunk(self) -> torch.Tensor:
        return self.t("in_prev_chunk_pixels")  # (B, F, 3, H, W) signed

    def cond_frames(self) -> torch.Tensor:
        prev = self.prev_chunk()
        return prev[:, prev.shape[1] - self.cam_frames:]

    def tokens(self, which: str) -> torch.Tensor:
        return self.model.tokens_from_clip_embeddings(self.t(f"in_clip_embed_{which}")[None])

    def context_uncond_cond(self) -> torch.Tensor:
        m = self.model
        return torch.cat([m.context(self.t("in_text_embeds_uncond"), self.tokens("grey")),
                          m.context(self.t("in_text_embeds_cond"), self.tokens("anchor"))])

    def eps_b(self, with_cam: bool = True) -> torch.Tensor:
        z = self.t("in_latents_t")
        frames = self.cond_frames()
        t = int(self.config["cases"]["b_c_timestep"])
        return self.model.predict_noise(torch.cat([z, z]), t, self.context_uncond_cond(),
                                        torch.cat([frames, frames]) if with_cam else None)

    def timestep_tensor(self) -> int:
        return int(self.config["cases"]["b_c_timestep"])


# -- cases ---------------------------------------------------------------------------------------------
def _case_architecture(fx: _Fixture) -> CaseResult:
    """The architecture read from the weights' shapes equals what config.json states."""
    u = fx.config["unet3d"]
    cfg_u = fx.model.unet.config
    checks = {
        "block_out_channels": (list(cfg_u.block_out_channels), u["block_out_channels"]),
        "layers_per_block": (cfg_u.layers_per_block, u["layers_per_block"]),
        "attention_head_dim": (cfg_u.attention_head_dim, u["attention_head_dim"]),
        "cross_attention_dim": (cfg_u.cross_attention_dim, u["cross_attention_dim"]),
        "cam_frame_channels": (list(fx.model.config.cam_frame_channels),
                               fx.config["cam"]["frame_encoder"]["conditioning_embedding_out_channels"]),
        "resampler_inner_dim": (fx.model.resampler.config.inner_dim, fx.config["apm"]["resampler"]["inner_dim"]),
        "num_apm_mixers": (sum(isinstance(m, APMCrossAttention) for m in fx.model.unet.modules()),
                           fx.config["apm"]["num_mixer_layers"]),
        "num_cam_mergers": (len(fx.model.unet.cross_attention_merger_down_blocks) + 1, len(fx.config["cam"]["mergers"])),
    }
    bad = [f"{k}: ours {a} vs config {b}" for k, (a, b) in checks.items() if a != b]
    return CaseResult("architecture_from_shapes", not bad, 0.0, 0.0, 0.0,
                      detail="; ".join(bad) or f"{len(checks)} numbers agree with config.json")


def _case_resampler(fx: _Fixture) -> CaseResult:
    checks = [fx.check("out_a_resampler_tokens_anchor", fx.tokens("anchor")),
              fx.check("out_a_resampler_tokens_grey", fx.tokens("grey")),
              fx.check("out_a_resampler_tokens_multi", fx.tokens("multi"))]
    return combine("a_resampler", checks)


def _case_clip_preprocess(fx: _Fixture) -> CaseResult:
    ref = fx.io["out_clip_preprocess_output"]
    ours = clip_preprocess(fx.t("in_clip_preprocess_input"), ref.shape[-1])
    return combine("clip_preprocess", [fx.check("out_clip_preprocess_output", ours)])


def _case_unit_apm(fx: _Fixture) -> CaseResult:
    attn = fx.model.official_submodule(fx.config["cases"]["unit_apm_key"])
    ours = attn(fx.t("in_unit_apm_hidden_states"), fx.t("in_unit_apm_context"))
    return combine("unit_apm_attn2", [fx.check("out_unit_apm_attn2_output", ours)])


def _case_unit_merger(fx: _Fixture) -> CaseResult:
    merger = fx.model.official_submodule(fx.config["cases"]["unit_merger_key"])
    skip, cam = fx.t("in_unit_merger_skip"), fx.t("in_unit_merger_cam_feature")
    b, f = skip.shape[:2]
    out = merger(skip.reshape(b * f, *skip.shape[2:]), cam.reshape(-1, *cam.shape[2:]), f)
    return combine("unit_merger", [fx.check("out_unit_merger_output", out.reshape(skip.shape))])


def _case_b(fx: _Fixture) -> CaseResult:
    return combine("b_eps_cam_apm", [fx.check("out_b_eps_cam_apm", fx.eps_b())])


def _case_b_debug(fx: _Fixture) -> CaseResult:
    m, fc = fx.model, fx.cam_frames
    z = fx.t("in_latents_t")
    frames = fx.cond_frames()
    ctx = fx.context_uncond_cond()
    skips, mid = m.cam_features(torch.cat([z, z]), fx.timestep_tensor(), ctx, torch.cat([frames, frames]))
    checks = [fx.check(f"out_b_debug_cam_down_res_{i:02d}_cond", s[fc:2 * fc]) for i, s in enumerate(skips)
              if f"out_b_debug_cam_down_res_{i:02d}_cond" in fx.io]
    if len(checks) != len(skips):
        return CaseResult("b_debug_cam_residuals", False, detail=f"we produce {len(skips)} CAM skips, the fixture "
                                                                 f"records {len(checks)}")
    checks.append(fx.check("out_b_debug_cam_mid_res_cond", mid[fc:2 * fc]))
    emb = m.cam.controlnet_cond_embedding(frames[0])
    checks.append(fx.check("out_b_debug_cam_frame_embedding", emb))
    return combine("b_debug_cam_residuals", checks)


def _case_b2(fx: _Fixture) -> CaseResult:
    mixers = [mod for mod in fx.model.unet.modules() if isinstance(mod, APMCrossAttention)]
    saved = [mod.alpha.detach().clone() for mod in mixers]
    try:
        for mod in mixers:
            mod.alpha.data.zero_()
        eps = fx.eps_b()
    finally:
        for mod, value in zip(mixers, saved):
            mod.alpha.data.copy_(value)
    return combine("b2_eps_cam_alpha0", [fx.check("out_b2_eps_cam_alpha0", eps)])


def _case_b3(fx: _Fixture) -> CaseResult:
    return combine("b3_eps_no_cam", [fx.check("out_b3_eps_no_cam", fx.eps_b(with_cam=False))])


def _case_c(fx: _Fixture) -> CaseResult:
    cases = fx.config["cases"]
    t = int(cases["b_c_timestep"])
    steps = int(fx.config["scheduler"]["official_num_inference_steps"])
    checks = []
    prev = ddim_prev_timestep(fx.schedule, t, steps)
    if prev != int(cases["c_prev_timestep"]):
        return CaseResult("c_guidance_ddim_step", False, detail=f"previous timestep {prev} != fixture's "
                                                                f"{cases['c_prev_timestep']}")
    eps = fx.eps_b()
    guided = cfg(eps[:1], eps[1:], fx.guidance)
    checks.append(fx.check("out_c_eps_guided", guided))
    z = fx.t("in_latents_t")
    b, c, f, h, w = z.shape
    noise = fx.t("in_ddim_variance_noise").reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
    x_prev, x0 = ddim_step(fx.schedule, guided, t, z, steps, fx.eta, noise)
    checks += [fx.check("out_c_x_prev_eta1", x_prev), fx.check("out_c_x0_pred", x0)]
    x_prev0, _ = ddim_step(fx.schedule, guided, t, z, steps, 0.0)
    checks.append(fx.check("out_c_x_prev_eta0", x_prev0))
    return combine("c_guidance_ddim_step", checks)


def _run_d(fx: _Fixture):
    """Case d through ``extend_chunk`` with the recorded noise: (trace of StepInfo, lookup encoder, steps)."""
    m = fx.model
    steps = int(fx.config["cases"]["d_num_inference_steps"])
    prev = fx.prev_chunk()
    ref_pre = fx.io["out_d_debug_clip_input_anchor_preprocessed"]
    lookup = _ClipLookup(fx.t("in_clip_embed_anchor"), fx.t("in_clip_embed_grey"), ref_pre.shape[-1]).to(fx.device)
    m.image_encoder = lookup
    try:
        anchor = prev[:, :1]  # (B, 1, 3, H, W): frame 0 of the previous chunk (conditioning 'fixed')
        cond = ExtendConditioning(
            text=fx.t("in_text_embeds_cond"), uncond_text=fx.t("in_text_embeds_uncond"),
            anchor=m.anchor_tokens(anchor), uncond_anchor=m.grey_anchor_tokens(like=anchor))
        trace: list[StepInfo] = []
        settings = ExtensionSettings(steps=steps, eta=fx.eta, guidance=fx.guidance, frames=fx.num_frames)
        extend_chunk(m, fx.cond_frames(), cond, settings, schedule=fx.schedule, step_hook=trace.append,
                     init_noise=fx.t("out_d_init_noise"),
                     variance_noise=[fx.t(f"out_d_ddim_variance_noise_step{i}") for i in range(steps)])
    finally:
        m.image_encoder = None
    return trace, lookup, steps


def _case_d(fx: _Fixture) -> CaseResult:
    trace, lookup, steps = _run_d(fx)
    ours_t = fx.schedule.timesteps(steps).tolist()
    if ours_t != list(fx.config["cases"]["d_timesteps"]):
        return CaseResult("d_cam_extension", False, detail=f"timesteps {ours_t} != {fx.config['cases']['d_timesteps']}")
    checks = []
    anchors = [x for x, is_grey in lookup.inputs if not is_grey]
    if not anchors:
        return CaseResult("d_cam_extension", False, detail="the anchor frame never reached the CLIP tower")
    checks.append(fx.check("out_d_debug_clip_input_anchor_preprocessed", anchors[0][None]))
    for info in trace:
        b, c, f, h, w = info.eps_guided.shape
        frame_major = info.eps_guided.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        checks.append(fx.check(f"out_d_debug_eps_guided_step{info.index}", frame_major))
        checks.append(fx.check(f"out_d_latents_after_step{info.index}", info.latents))
    checks.append(fx.check("out_d_final_latents", trace[-1].latents))
    return combine("d_cam_extension", checks)


def _case_d_draws(fx: _Fixture) -> CaseResult:
    """What ``extend_chunk`` draws from the seeded CPU generator when nothing is injected equals the
    official draws bit for bit (they are inputs in effect: exact match required)."""
    seed = int(fx.config["cases"]["d_generator"]["seed"])
    steps = int(fx.config["cases"]["d_num_inference_steps"])
    shape = tuple(fx.io["out_d_init_noise"].shape)
    init, per_step = draw_official_noise(torch.Generator().manual_seed(seed), shape, steps, fx.eta)
    # the same random bits in the same order; the normals themselves carry the kernel path's last bits
    checks = [compare("out_d_init_noise", init, fx.io["out_d_init_noise"], atol=NORMAL_DRAW_ATOL, rtol=0.0)]
    checks += [compare(f"out_d_ddim_variance_noise_step{i}", n, fx.io[f"out_d_ddim_variance_noise_step{i}"],
                       atol=NORMAL_DRAW_ATOL, rtol=0.0) for i, n in enumerate(per_step)]
    return combine("d_generator_draws", checks)


CASES = [
    ("architecture_from_shapes", _case_architecture),
    ("a_resampler", _case_resampler),
    ("clip_preprocess", _case_clip_preprocess),
    ("unit_apm_attn2", _case_unit_apm),
    ("unit_merger", _case_unit_merger),
    ("b_eps_cam_apm", _case_b),
    ("b_debug_cam_residuals", _case_b_debug),
    ("b2_eps_cam_alpha0", _case_b2),
    ("b3_eps_no_cam", _case_b3),
    ("c_guidance_ddim_step", _case_c),
    ("d_cam_extension", _case_d),
    ("d_generator_draws", _case_d_draws),
]


def run_cases(fixture_dir: Path, device: str = "cpu") -> Iterator[CaseResult]:
    fx_holder: list[_Fixture] = []

    def setup() -> CaseResult:
        fx_holder.append(_Fixture(Path(fixture_dir), device))
        return CaseResult("load_weights", True, 0.0, 0.0, 0.0,
                          detail=f"{sum(p.numel() for p in fx_holder[0].model.parameters()):,} parameters")

    result = guarded("load_weights", setup)
    yield result
    if not fx_holder:
        return
    fx = fx_holder[0]
    with torch.no_grad():
        for name, fn in CASES:
            yield guarded(name, lambda fn=fn: fn(fx))
