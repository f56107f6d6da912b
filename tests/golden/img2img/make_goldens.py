#!/usr/bin/env python3
"""Goldens for kakusan's image-to-image and inpainting pipelines, from diffusers itself.

Versions: diffusers 0.29.2, transformers 4.40.2, torch 2.x (PyPI, CPU, fp32, one thread), Pillow 9.4.
Model: the golden kit's tiny-sd (KAKUSAN_GOLDEN_DIR/tiny-sd); its tokenizer files are read from the kit, never
copied here. On torch 2.x diffusers picks AttnProcessor2_0 (scaled_dot_product_attention) where the kit used
the patched AttnProcessor; the two agree to ~1e-7, far inside the pipeline tolerances.

Writes into this folder (small files only):
  input_64x64.png, input_100x70.png (resized by diffusers' preprocessor to 96x64), mask_64x64.png
  mode_*.png, modes.safetensors       RGBA / grey / grey+alpha / palette PNGs and PIL's convert("RGB") of each
  add_noise.safetensors               every scheduler's add_noise at img2img's begin index, for the unit test
  resize.safetensors                  PIL's Lanczos resizes of the inputs (uint8 as F32), for the unit test
  tiny-inpaint-unet/                  a tiny 9-channel inpainting UNet (mask + masked-image latents), seed 0
  <case>.safetensors                  latents (final), image (NHWC [0,1]), init_image (96x64 case),
                                      latents_after_step [T,B,4,h,w]
Run: /work/venv/bin/python make_goldens.py  (from anywhere; KAKUSAN_GOLDEN_DIR defaults to /work/shared/golden)
"""
import json
import os
import sys

import numpy as np
import PIL.Image
import torch
from safetensors.torch import save_file

from diffusers import (DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, HeunDiscreteScheduler,
                       KDPM2AncestralDiscreteScheduler, PNDMScheduler,
                       StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, UNet2DConditionModel)
from diffusers.image_processor import VaeImageProcessor

HERE = os.path.dirname(os.path.abspath(__file__))
KIT = os.environ.get("KAKUSAN_GOLDEN_DIR", "/work/shared/golden")
TINY_SD = os.path.join(KIT, "tiny-sd")
PROMPT = "portrait photo of a old warrior chief"
STEPS = 10
torch.set_num_threads(1)


def make_inputs():
    """Deterministic test pictures: smooth gradients with a few hard edges, and a rectangular mask."""
    def picture(w, h):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        r = 255 * x / (w - 1)
        g = 127.5 + 127.5 * np.sin(x / 5.0) * np.cos(y / 7.0)
        b = np.where(((x // 8) + (y // 8)) % 2 == 0, 40.0, 215.0)
        return PIL.Image.fromarray(np.stack([r, g, b], -1).round().astype(np.uint8), "RGB")
    picture(64, 64).save(os.path.join(HERE, "input_64x64.png"))
    picture(100, 70).save(os.path.join(HERE, "input_100x70.png"))
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 20:52] = 255
    mask[40:44, 4:12] = 200  # above 0.5 after /255: binarised to 1
    mask[4:8, 40:48] = 100   # below 0.5: binarised to 0
    PIL.Image.fromarray(mask, "L").save(os.path.join(HERE, "mask_64x64.png"))


def save_mode_pngs():
    """Small PNGs in other modes, and what PIL's convert("RGB") makes of them (read_image must agree)."""
    y, x = np.mgrid[0:6, 0:5]
    rgb = np.stack([x * 50, y * 40, (x * y * 13) % 256], -1).astype(np.uint8)
    alpha = ((x + y) * 30).astype(np.uint8)
    grey = (x * 40 + y * 7).astype(np.uint8)
    images = {
        "rgba": PIL.Image.fromarray(np.concatenate([rgb, alpha[..., None]], -1), "RGBA"),
        "grey": PIL.Image.fromarray(grey, "L"),
        "grey_alpha": PIL.Image.fromarray(np.stack([grey, alpha], -1), "LA"),
        "palette": PIL.Image.fromarray(rgb, "RGB").quantize(colors=7, method=PIL.Image.Quantize.MEDIANCUT),
    }
    tensors = {}
    for name, image in images.items():
        path = os.path.join(HERE, f"mode_{name}.png")
        image.save(path)
        tensors[name] = torch.from_numpy(np.asarray(PIL.Image.open(path).convert("RGB")).astype(np.float32))
    save_file(tensors, os.path.join(HERE, "modes.safetensors"))


def load(name):
    return PIL.Image.open(os.path.join(HERE, name))


def save_resize_golden():
    """PIL's Lanczos resizes (down, up, and strongly down) as float32 copies of the uint8 pixels."""
    tensors = {}
    for src, (w, h) in (("input_100x70.png", (96, 64)), ("input_64x64.png", (80, 72)), ("input_100x70.png", (24, 40))):
        img = load(src).convert("RGB")
        resized = img.resize((w, h), resample=PIL.Image.LANCZOS)
        name = f"{src[6:-4]}_to_{w}x{h}"
        tensors[name] = torch.from_numpy(np.asarray(resized).astype(np.float32)).contiguous()
    save_file(tensors, os.path.join(HERE, "resize.safetensors"))


ADD_NOISE_SCHEDULERS = [
    ("DDIMScheduler", {}), ("DDPMScheduler", {}), ("PNDMScheduler", {}), ("LMSDiscreteScheduler", {}),
    ("EulerDiscreteScheduler", {}), ("EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    ("EulerAncestralDiscreteScheduler", {}), ("HeunDiscreteScheduler", {}), ("KDPM2DiscreteScheduler", {}),
    ("KDPM2AncestralDiscreteScheduler", {}), ("DPMSolverMultistepScheduler", {}),
    ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}), ("DPMSolverSinglestepScheduler", {}),
    ("DEISMultistepScheduler", {}), ("UniPCMultistepScheduler", {})]


def save_add_noise_golden():
    """Every scheduler's add_noise as img2img calls it: set_timesteps(10), set_begin_index(t_start * order) where
    the class has it, add_noise(x, noise, timesteps[t_start * order]) for t_start in 0, 3, 9."""
    import diffusers
    config = PNDMScheduler.from_pretrained(os.path.join(TINY_SD, "scheduler")).config
    x = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    tensors = {"original": x, "noise": noise}
    for name, options in ADD_NOISE_SCHEDULERS:
        key = name + ("_karras" if options else "")
        for t_start in (0, 3, 9):
            sched = getattr(diffusers, name).from_config(config, **options)
            sched.set_timesteps(10)
            begin = t_start * sched.order
            if hasattr(sched, "set_begin_index"):
                sched.set_begin_index(begin)
            tensors[f"{key}_begin{begin}"] = sched.add_noise(x, noise, sched.timesteps[begin:begin + 1]).contiguous()
    save_file(tensors, os.path.join(HERE, "add_noise.safetensors"))


def make_inpaint_unet():
    """A 9-channel UNet small enough to commit (tiny-sd's cross_attention_dim, so its text encoder fits)."""
    out = os.path.join(HERE, "tiny-inpaint-unet")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=9, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=8, attention_head_dim=2, cross_attention_dim=32)
    unet.save_pretrained(out, safe_serialization=True)
    return unet


class Recorder:
    def __init__(self):
        self.steps = []

    def __call__(self, pipe, i, t, kwargs):
        self.steps.append(kwargs["latents"].clone())
        return kwargs


def run(case, pipe, scheduler_cls, init_image=None, **kwargs):
    pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    rec = Recorder()
    out = pipe(callback_on_step_end=rec, output_type="np", guidance_scale=7.5, num_inference_steps=STEPS, **kwargs)
    tensors = {
        "latents": rec.steps[-1].contiguous(),
        "image": torch.from_numpy(out.images).contiguous(),
        "latents_after_step": torch.stack(rec.steps).contiguous(),
    }
    if init_image is not None:  # the preprocessed image (resized, normalised), where a resize happened
        tensors["init_image"] = init_image.contiguous()
    save_file(tensors, os.path.join(HERE, case + ".safetensors"))
    print(case, "steps", len(rec.steps), "latents", tuple(tensors["latents"].shape))


def gens(*seeds):
    g = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    return g[0] if len(g) == 1 else g


def main():
    make_inputs()
    save_resize_golden()
    save_mode_pngs()
    save_add_noise_golden()
    proc = VaeImageProcessor(vae_scale_factor=8)
    img64, img96 = load("input_64x64.png"), load("input_100x70.png")
    mask = load("mask_64x64.png")

    i2i = StableDiffusionImg2ImgPipeline.from_pretrained(TINY_SD, safety_checker=None, requires_safety_checker=False)
    i2i.set_progress_bar_config(disable=True)
    pre96 = proc.preprocess(img96)
    run("i2i_dpm_s075", i2i, DPMSolverMultistepScheduler, prompt=PROMPT, image=img64, strength=0.75,
        generator=gens(0))
    run("i2i_dpm_s040", i2i, DPMSolverMultistepScheduler, prompt=PROMPT, image=img64, strength=0.4,
        generator=gens(0))
    run("i2i_eulera_s075", i2i, EulerAncestralDiscreteScheduler, prompt=PROMPT, image=img64, strength=0.75,
        generator=gens(0))
    run("i2i_eulera_s040", i2i, EulerAncestralDiscreteScheduler, prompt=PROMPT, image=img64, strength=0.4,
        generator=gens(0))
    # Per-image generators: diffusers encodes image i with generator i (it needs one image per generator).
    run("i2i_batch_generators", i2i, EulerAncestralDiscreteScheduler, prompt=[PROMPT, "a red car"],
        image=[img64, img64], strength=0.75, generator=gens(1, 2))
    # One generator, two images per prompt from one picture: encoded once, the latents repeated.
    run("i2i_one_generator_x2", i2i, EulerAncestralDiscreteScheduler, prompt=PROMPT, image=img64,
        strength=0.75, num_images_per_prompt=2, generator=gens(3))
    # Second-order schedulers: the begin index is t_start * order, and the loop starts inside their state machine.
    run("i2i_heun_s060", i2i, HeunDiscreteScheduler, prompt=PROMPT, image=img64, strength=0.6, generator=gens(0))
    run("i2i_kdpm2a_s050", i2i, KDPM2AncestralDiscreteScheduler, prompt=PROMPT, image=img64, strength=0.5,
        generator=gens(0))
    run("i2i_pndm_96x64", i2i, PNDMScheduler, pre96, prompt=PROMPT, image=img96, strength=0.6, generator=gens(0))

    inp = StableDiffusionInpaintPipeline.from_pretrained(TINY_SD, safety_checker=None, requires_safety_checker=False)
    inp.set_progress_bar_config(disable=True)
    run("inpaint4_pndm_s100", inp, PNDMScheduler, prompt=PROMPT, image=img64, mask_image=mask, strength=1.0,
        generator=gens(0))
    run("inpaint4_dpm_s075", inp, DPMSolverMultistepScheduler, prompt=PROMPT, image=img64, mask_image=mask,
        strength=0.75, generator=gens(0))
    inp.unet = make_inpaint_unet()
    run("inpaint9_pndm_s100", inp, PNDMScheduler, prompt=PROMPT, image=img64, mask_image=mask, strength=1.0,
        generator=gens(0))
    run("inpaint9_eulera_s075", inp, EulerAncestralDiscreteScheduler, prompt=PROMPT, image=img64,
        mask_image=mask, strength=0.75, generator=gens(0))


if __name__ == "__main__":
    sys.exit(main())
