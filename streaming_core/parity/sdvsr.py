"""Parity of our Stream-DiffVSR with a fixture computed by the official code (``kind: stream_diffvsr``).

Everything comes from the fixture: network configs (``config.json``, read through the same
shape-inference code the real loader uses), weights (``weights_file``), inputs and references
(``tensors_file``), tolerances and the scheduler facts (``cases.json``). Each case of
``cases.json`` is dispatched by name; a case or tensor name this runner does not know fails rather
than passing unchecked.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..checkpoints.files import load_state_dict
from ..checkpoints.sdvsr import build_controlnet_from, build_raft_from, build_unet_from, build_vae_from
from ..models.sdvsr.bundle import SDVSRModels, sdvsr_schedule
from ..models.sdvsr.denoiser import predict_v
from ..models.sdvsr.warp import flow_warp
from ..pipelines.sdvsr_frames import bicubic_x4, preprocess_frame
from ..pipelines.upscale import UpscaleSettings, UpscaleStream
from ..sampling.ddim import ddim_prev_timestep, ddim_step
from .report import NORMAL_DRAW_ATOL, TABLE_ATOL, CaseResult, combine, compare, guarded

_INDEXED = re.compile(r"^(?P<name>[^\[]+)\[(?P<index>[^\]]+)\]$")


class Fixture:
    """config.json, cases.json and lazily loaded tensors/weights/models of one fixture directory."""

    def __init__(self, root: Path, device: str):
        self.root = Path(root)
        self.device = torch.device(device)
        self.config = json.loads((self.root / "config.json").read_text())
        self.cases = json.loads((self.root / "cases.json").read_text())
        self._io = None
        self._weights = None
        self._models: dict[str, object] = {}

    @property
    def io(self) -> dict[str, torch.Tensor]:
        if self._io is None:
            self._io = load_state_dict(self.root / self.cases.get("tensors_file", "io.safetensors"))
        return self._io

    def weights(self, prefix: str) -> dict[str, torch.Tensor]:
        if self._weights is None:
            name = self.cases.get("weights_file") or self.config.get("weights_file", {}).get("name", "weights.safetensors")
            self._weights = load_state_dict(self.root / name)
        return {k[len(prefix):]: v for k, v in self._weights.items() if k.startswith(prefix)}

    def tensor(self, name: str) -> torch.Tensor:
        """``name``, ``name[i]`` or ``name[a:b]`` from the io tensors."""
        m = _INDEXED.match(name)
        if not m:
            return self.io[name]
        base = self.io[m["name"]]
        index = m["index"]
        if ":" in index:
            a, b = (int(x) if x else None for x in index.split(":"))
            return base[a:b]
        return base[int(index)]

    def model(self, part: str):
        if part not in self._models:
            section = self.config.get(part, {})
            hub = section.get("config")
            build = {"unet": build_unet_from, "controlnet": build_controlnet_from, "vae": build_vae_from}.get(part)
            if part == "raft":
                m = build_raft_from(self.weights("raft."))
                m.iterations = int(section.get("num_flow_updates", m.iterations))
            else:
                m = build(self.weights(part + "."), hub)
            self._models[part] = m.to(self.device)
        return self._models[part]

    def schedule(self):
        return sdvsr_schedule(self.config.get("scheduler", {}).get("config"))

    def steps(self) -> int:
        return int(self.config.get("pipeline_call", {}).get("num_inference_steps", 4))

    def to_dev(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device)


def _check(name: str, ours: torch.Tensor, ref: torch.Tensor, spec: dict) -> CaseResult:
    return compare(name, ours, ref, atol=float(spec.get("atol", 0.0)), rtol=float(spec.get("rtol", 0.0)))


def _uint8_rule(rule: str) -> tuple[int, float]:
    """'allow |diff|<=1 on <=0.1% of pixels' -> (1, 0.001)."""
    m = re.search(r"\|diff\|\s*<=\s*(\d+)\s*on\s*<=\s*([\d.]+)\s*%", rule or "")
    return (int(m[1]), float(m[2]) / 100) if m else (0, 0.0)


def _check_uint8(name: str, ours: torch.Tensor, ref: torch.Tensor, rule: str) -> CaseResult:
    max_diff, max_frac = _uint8_rule(rule)
    if ours.shape != ref.shape:
        return CaseResult(name, False, detail=f"shape {tuple(ours.shape)} != reference {tuple(ref.shape)}")
    d = (ours.long() - ref.long()).abs()
    frac = (d > 0).float().mean().item()
    ok = d.max().item() <= max_diff and frac <= max_frac
    return CaseResult(name, ok, float(d.max()), float(d.max()) / 256, frac,
                      detail=f"{frac:.2e} of values differ (allowed {max_frac:.2e}, |diff| <= {max_diff})")


def _unknown(name: str, what: str) -> CaseResult:
    return CaseResult(name, False, detail=f"no rule to compute {what} (unknown to this runner)")


# ------------------------------------------------------------------------------------------ cases


def case_flow_warp(fx: Fixture, case: dict) -> CaseResult:
    x = fx.to_dev(fx.tensor("warp.x"))
    checks = []
    for out, spec in case["outputs"].items():
        m = re.search(r"flow_warp\(\s*([\w.\[\]:]+)\s*,\s*([\w.\[\]:]+)\s*\)", spec.get("note", ""))
        image, flow_name = (m[1], m[2]) if m else ("warp.x", out.replace(".out_", ".flow_"))
        if flow_name not in fx.io:
            checks.append(_unknown(out, f"{out} (its flow input {flow_name} is missing)"))
            continue
        image_t = x if image == "warp.x" else fx.to_dev(fx.tensor(image))
        flow = fx.to_dev(fx.tensor(flow_name))
        checks.append(_check(out, flow_warp(image_t, flow), fx.tensor(out), spec))
        checks.append(_check(out + " (flow as N,2,H,W)", flow_warp(image_t, flow.permute(0, 3, 1, 2)), fx.tensor(out), spec))
    return combine(case["name"], checks)


def case_bicubic(fx: Fixture, case: dict) -> CaseResult:
    inputs = list(case["inputs"])
    checks = []
    for k, (out, spec) in enumerate(case["outputs"].items()):
        m = re.search(r"bicubic\(\s*([\w.\[\]:]+)\s*\)", spec.get("note", ""))
        src = m[1] if m else inputs[k]
        checks.append(_check(out, bicubic_x4(fx.to_dev(fx.tensor(src))), fx.tensor(out), spec))
    return combine(case["name"], checks)


def case_raft(fx: Fixture, case: dict) -> CaseResult:
    raft = fx.model("raft")
    roles = {spec.get("role", ""): name for name, spec in case["inputs"].items()}
    cur = next((n for r, n in roles.items() if "current" in r), "raft.image1")
    prev = next((n for r, n in roles.items() if "previous" in r), "raft.image2")
    image1 = fx.to_dev(fx.tensor(cur)).contiguous(memory_format=torch.channels_last)
    image2 = fx.to_dev(fx.tensor(prev)).contiguous(memory_format=torch.channels_last)
    flows = raft.flow(image1, raft.features(image1), raft.features(image2), all_iterations=True)
    checks = []
    for out, spec in case["outputs"].items():
        m = re.search(r"iter(\d+)", out)
        ref = fx.tensor(out)
        ours = flows[int(m[1]) - 1] if m else flows[-1]
        if ours.shape != ref.shape and ref.shape[-1] == 2:  # stored as (H, W, 2)
            ours = ours.permute(0, 2, 3, 1).reshape(ref.shape)
        checks.append(_check(out, ours, ref, spec))
    return combine(case["name"], checks)


def case_decoder(fx: Fixture, case: dict) -> CaseResult:
    vae = fx.model("vae")
    latent = fx.to_dev(fx.tensor("dec.latent"))
    warped = fx.to_dev(fx.tensor("dec.warped_prev"))
    checks = []
    with torch.no_grad():
        feats = vae.encoder.block_features_by_layer(warped)
        for name, spec in case.get("intermediates", {}).items():
            m = re.fullmatch(r"dec\.enc_feat\.(\d+)", name)
            if not m or int(m[1]) not in feats:
                checks.append(_unknown(name, name))
                continue
            checks.append(_check(name, feats[int(m[1])], fx.tensor(name), spec))
        outputs = {"dec.out_tpm": lambda: vae.decode(latent, warped), "dec.out_no_tpm": lambda: vae.decode(latent)}
        for name, spec in case["outputs"].items():
            checks.append(_check(name, outputs[name](), fx.tensor(name), spec) if name in outputs else _unknown(name, name))
    return combine(case["name"], checks)


def case_step(fx: Fixture, case: dict) -> CaseResult:
    unet, controlnet = fx.model("unet"), fx.model("controlnet")
    schedule, steps = fx.schedule(), fx.steps()
    x_t = fx.to_dev(fx.tensor("step.x_t"))
    sample = torch.cat([x_t, fx.to_dev(fx.tensor("step.lr"))], dim=1)
    t = int(fx.tensor("step.timestep").reshape(-1)[0])
    timestep = torch.tensor(t, device=fx.device)
    embeds = fx.to_dev(fx.tensor("e2e.prompt_embeds"))
    cond = fx.to_dev(fx.tensor("step.cond"))
    got: dict[str, torch.Tensor] = {}
    v = predict_v(unet, controlnet, sample, timestep, embeds, cond, lambda n, x: got.__setitem__("step." + n, x))
    got["step.v_with_cn"] = v
    got["step.v_without_cn"] = predict_v(unet, controlnet, sample, timestep, embeds, None)
    got["step.prev_sample"], got["step.pred_x0"] = ddim_step(schedule, v, t, x_t, steps)
    checks = [(_check(n, got[n], fx.tensor(n), spec) if n in got else _unknown(n, n)) for n, spec in case["outputs"].items()]
    return combine(case["name"], checks)


def case_preprocess(fx: Fixture, case: dict) -> CaseResult:
    (src,) = case["inputs"]
    checks = [(_check(n, preprocess_frame(fx.tensor(src), 1), fx.tensor(n), spec) if n == "pre.out" else _unknown(n, n))
              for n, spec in case["outputs"].items()]
    return combine(case["name"], checks)


def case_schedule(fx: Fixture, case: dict) -> CaseResult:
    schedule, steps = fx.schedule(), fx.steps()
    values = case.get("values", {})
    ts = schedule.timesteps(steps)
    checks = []
    for n, spec in case["outputs"].items():
        checks.append(compare(n, schedule.alphas_cumprod, fx.tensor(n), atol=max(TABLE_ATOL, float(spec.get("atol", 0.0))),
                              rtol=float(spec.get("rtol", 0.0)))
                      if n == "sched.alphas_cumprod" else _unknown(n, n))
    derived = {
        "timesteps": lambda: ts.double(),
        "prev_timesteps": lambda: torch.tensor([ddim_prev_timestep(schedule, t, steps) for t in ts.tolist()]).double(),
        "alphas_cumprod_at_t": lambda: torch.stack([schedule.alpha_at(t) for t in ts.tolist()]).double(),
        "alphas_cumprod_prev": lambda: torch.stack(
            [schedule.alpha_at(ddim_prev_timestep(schedule, t, steps)) for t in ts.tolist()]).double(),
        "final_alpha_cumprod": lambda: schedule.final_alpha_cumprod.double(),
        "init_noise_sigma": lambda: torch.tensor(1.0, dtype=torch.float64),
    }
    integer_valued = {"timesteps", "prev_timesteps", "init_noise_sigma"}  # exact on any machine
    for key, ref in values.items():
        if key in derived:
            atol = 0 if key in integer_valued else TABLE_ATOL  # float32 table entries: kernel-path noise
            checks.append(compare(f"values.{key}", derived[key](), torch.tensor(ref, dtype=torch.float64), atol=atol, rtol=0))
    return combine(case["name"], checks)


def case_e2e(fx: Fixture, case: dict) -> CaseResult:
    models = SDVSRModels(fx.model("unet"), fx.model("controlnet"), fx.model("vae"), fx.model("raft"),
                         fx.to_dev(fx.tensor("e2e.prompt_embeds")), fx.schedule(), name="fixture")
    lr_frames = fx.tensor("e2e.lr_uint8")
    noise = fx.tensor("e2e.noise")
    trace: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    stream = UpscaleStream(models, list(lr_frames), settings=UpscaleSettings(steps=fx.steps()), noise=list(noise),
                           record=lambda f, n, t: trace[f][n].append(t.detach().cpu()))
    images = torch.stack(list(stream))
    frames = sorted(trace)
    later = [f for f in frames if f > 0]

    def stack(name: str, fs=frames, per_step: bool = False) -> torch.Tensor:
        per_frame = [torch.stack(trace[f][name], 1)[0] if per_step else trace[f][name][0][0] for f in fs]
        return torch.stack(per_frame)

    got: dict[str, Callable[[], torch.Tensor]] = {
        "e2e.hr": lambda: stack("hr"),
        "e2e.hr_uint8": lambda: images.mul(255).round().to(torch.uint8),
        "e2e.lr": lambda: torch.cat([_pre(fr, i) for i, fr in enumerate(lr_frames)]),
        "e2e.latents": lambda: stack("latent", per_step=True),
        "e2e.vpred": lambda: stack("vpred", per_step=True),
        "e2e.flow": lambda: stack("flow", later),
        "e2e.cn_mid": lambda: stack("cn_mid", later, per_step=True),
        "step.cond": lambda: trace[later[0]]["warped"][0],
    }
    checks = []
    for section in ("outputs", "intermediates"):
        for name, spec in case.get(section, {}).items():
            if name not in got:
                checks.append(_unknown(name, name))
            elif name.endswith("uint8"):
                checks.append(_check_uint8(name, got[name](), fx.tensor(name), spec.get("rule", "")))
            else:
                checks.append(_check(name, got[name](), fx.tensor(name), spec))
    replay = case.get("inputs", {}).get("e2e.noise", {}).get("replay")
    if replay:  # our default noise (seeded CPU generator, one draw per frame) is the official draw order
        g = torch.Generator().manual_seed(int(replay["seed"]))
        ours = torch.cat([torch.randn((1, *noise.shape[1:]), generator=g) for _ in range(noise.shape[0])])
        # the same random bits in the same order; the normals carry the kernel path's last bits
        checks.append(compare("e2e.noise (seeded replay)", ours, noise, atol=NORMAL_DRAW_ATOL, rtol=0))
    checks += _stats_extra_checks(fx, trace, models)
    return combine(case["name"], checks)


def _pre(frame: torch.Tensor, index: int) -> torch.Tensor:
    return preprocess_frame(frame, index + 1)


def _stats_extra_checks(fx: Fixture, trace, models) -> list[CaseResult]:
    """Summary statistics the fixture keeps for tensors it does not store (warped frame 2, TPM features)."""
    checks = []
    for key, stats in fx.cases.get("stats_extra", {}).items():
        m_w = re.match(r"e2e\.warped_prev\[(\d+)\]", key)
        m_f = re.match(r"e2e\.enc_feat frame (\d+) block (\d+)", key)
        if m_w:
            ours = trace.get(int(m_w[1]) + 1, {}).get("warped", [None])[0]
        elif m_f:
            warped = trace.get(int(m_f[1]), {}).get("warped", [None])[0]
            if warped is None:
                ours = None
            else:
                with torch.no_grad():
                    feats = models.vae.encoder.block_features(warped.to(fx.device))
                ours = feats[int(m_f[2])] if int(m_f[2]) < len(feats) else None
        else:
            continue
        if ours is None:
            checks.append(CaseResult(f"stats {key}", False, detail="tensor not produced"))
            continue
        ours = ours.double().cpu()
        got = torch.tensor([ours.mean(), ours.std(), ours.min(), ours.max()])
        ref = torch.tensor([stats["mean"], stats["std"], stats["min"], stats["max"]], dtype=torch.float64)
        checks.append(compare(f"stats {key}", got, ref, atol=2e-4, rtol=1e-4))
    return checks


CASES: dict[str, Callable[[Fixture, dict], CaseResult]] = {
    "flow_warp": case_flow_warp,
    "bicubic_upscale": case_bicubic,
    "raft_forward": case_raft,
    "temporal_decoder_tpm": case_decoder,
    "unet_controlnet_step": case_step,
    "e2e_3frame": case_e2e,
    "preprocess_floor4": case_preprocess,
    "ddim_schedule": case_schedule,
}


def run_cases(fixture_dir: Path, device: str = "cpu") -> Iterator[CaseResult]:
    fx = Fixture(fixture_dir, device)
    for case in fx.cases["cases"]:
        name = case["name"]
        runner = CASES.get(name)
        if runner is None:
            yield CaseResult(name, False, detail="unknown case: this runner has no implementation for it")
            continue
        with torch.no_grad():
            yield guarded(name, lambda: runner(fx, case))
