#!/usr/bin/env python3
# Goldens for LCMScheduler and AutoencoderTiny (TAESD), written by diffusers itself.
#
# Versions: diffusers 0.29.2, transformers 4.40.2, torch 2.x CPU (PyPI), float32, one thread. The kit's tiny-sd
# model ($KAKUSAN_GOLDEN_DIR/tiny-sd) is the pipeline model; the tiny TAESD is made here from a fixed seed.
#
#   KAKUSAN_GOLDEN_DIR=/work/shared/golden /work/venv/bin/python tests/golden/lcm/make_goldens.py
#
# Writes (next to this script and in ../taesd):
#   lcm/lcm_scheduler.safetensors  LCMScheduler.from_config(sd15 scheduler config [, overrides]):
#       timesteps_N<n> for n in 1, 2, 3, 4, 8, 50; timesteps_orig<o>_N<n> with original_inference_steps = o;
#       loop_<case> = dummy-model loop as the kit's C.6 (x = dummy_sample_deter; x = step(model(x, t), t, x,
#       generator=torch.manual_seed(0)) with model(x, t) = x * t / (t + 1)); trace_eps_N4 = x[0] after every step.
#   lcm/pipe_lcm_g1.safetensors, lcm/pipe_lcm_g2.safetensors  StableDiffusionPipeline(tiny-sd) with
#       LCMScheduler.from_config, 4 steps, guidance 1.0 (no CFG) / 2.0 (CFG), seed 0, 64x64.
#   taesd/tiny-taesd/            a tiny AutoencoderTiny (config.json + safetensors), torch.manual_seed(0) init.
#   taesd/taesd.safetensors      decode of randn(seed 0, (2,4,4,4)) * 2; encode of an analytic image (1,3,64,64).
#   taesd/pipe_taesd.safetensors tiny-sd with the tiny TAESD as vae, LCM 4 steps, guidance 1, seed 0.
import json
import os
import pathlib

import numpy as np
import torch
from diffusers import AutoencoderTiny, LCMScheduler, StableDiffusionPipeline
from safetensors.torch import save_file

torch.set_num_threads(1)
HERE = pathlib.Path(__file__).resolve().parent
TAESD = HERE.parent / "taesd"
KIT = pathlib.Path(os.environ["KAKUSAN_GOLDEN_DIR"])
SD15 = json.loads((KIT / "tiny-sd/scheduler/scheduler_config.json").read_text())
PROMPT = "portrait photo of a old warrior chief"


def dummy_sample_deter():
    # diffusers' test fixture (the kit's C.6 sample).
    return torch.arange(4 * 3 * 8 * 8, dtype=torch.float32).reshape(3, 8, 8, 4).permute(3, 0, 1, 2) / 768


def scheduler(**overrides):
    return LCMScheduler.from_config(SD15, **overrides)


def loop(sched, n, trace=None):
    sched.set_timesteps(n)
    generator = torch.manual_seed(0)
    x = dummy_sample_deter() * sched.init_noise_sigma
    for t in sched.timesteps:
        out = sched.scale_model_input(x, t) * t.float() / (t.float() + 1)
        x = sched.step(out, t, x, generator=generator).prev_sample
        if trace is not None:
            trace.append(x[0].clone())
    return x


def scheduler_goldens():
    out = {}
    for n in (1, 2, 3, 4, 8, 50):
        s = scheduler()
        s.set_timesteps(n)
        out[f"timesteps_N{n}"] = s.timesteps.clone()
    for orig, n in ((100, 4), (100, 8), (20, 4), (4, 4)):
        s = scheduler(original_inference_steps=orig)
        s.set_timesteps(n)
        out[f"timesteps_orig{orig}_N{n}"] = s.timesteps.clone()
    trace = []
    out["loop_eps_N4"] = loop(scheduler(), 4, trace)
    out["trace_eps_N4"] = torch.stack(trace)
    out["loop_eps_N1"] = loop(scheduler(), 1)
    out["loop_v_N4"] = loop(scheduler(prediction_type="v_prediction"), 4)
    out["loop_sample_clip_N8"] = loop(scheduler(prediction_type="sample", clip_sample=True), 8)
    out["loop_alpha1_scaling5_N4"] = loop(scheduler(set_alpha_to_one=True, timestep_scaling=5.0), 4)
    save_file({k: v.contiguous() for k, v in out.items()}, str(HERE / "lcm_scheduler.safetensors"))
    print("effective config:", json.dumps(dict(scheduler().config)))


def run_pipeline(pipe, guidance, path):
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    steps = []

    def on_step_end(p, i, t, kwargs):
        steps.append(kwargs["latents"].clone())
        return kwargs

    common = dict(prompt=PROMPT, height=64, width=64, num_inference_steps=4, guidance_scale=guidance)
    latents = pipe(**common, generator=torch.Generator("cpu").manual_seed(0), output_type="latent",
                   callback_on_step_end=on_step_end).images
    image = pipe(**common, generator=torch.Generator("cpu").manual_seed(0), output_type="np").images
    save_file({"latents": latents.contiguous(), "image": torch.from_numpy(np.ascontiguousarray(image)),
               "timesteps": pipe.scheduler.timesteps.clone(), "latents_after_step": torch.stack(steps)},
              str(path))


def make_tiny_taesd():
    torch.manual_seed(0)
    vae = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                          num_encoder_blocks=(1, 2, 1, 1), num_decoder_blocks=(1, 1, 2, 1))
    vae.save_pretrained(str(TAESD / "tiny-taesd"), safe_serialization=True)
    return vae


def taesd_goldens(vae):
    z = torch.randn((2, 4, 4, 4), generator=torch.Generator("cpu").manual_seed(0)) * 2
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    image = torch.stack([xx, yy, torch.sin(3 * xx) * torch.cos(2 * yy)])[None].contiguous()
    with torch.no_grad():
        out = {"decode_input": z, "decode_output": vae.decode(z).sample,
               "encode_input": image, "encode_output": vae.encode(image).latents}
    save_file({k: v.contiguous() for k, v in out.items()}, str(TAESD / "taesd.safetensors"))


def main():
    os.umask(0o022)
    scheduler_goldens()
    pipe = StableDiffusionPipeline.from_pretrained(str(KIT / "tiny-sd"), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    run_pipeline(pipe, 1.0, HERE / "pipe_lcm_g1.safetensors")
    run_pipeline(pipe, 2.0, HERE / "pipe_lcm_g2.safetensors")
    vae = make_tiny_taesd()
    taesd_goldens(vae)
    tiny_pipe = StableDiffusionPipeline.from_pretrained(str(KIT / "tiny-sd"), vae=vae, safety_checker=None)
    tiny_pipe.set_progress_bar_config(disable=True)
    run_pipeline(tiny_pipe, 1.0, TAESD / "pipe_taesd.safetensors")


if __name__ == "__main__":
    main()
