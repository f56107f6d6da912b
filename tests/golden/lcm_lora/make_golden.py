#!/usr/bin/env python3
# Golden for the LCM-LoRA recipe (issue 19, item 2), written by diffusers itself: the kit's tiny-sd with a tiny
# random LoRA laid out as latent-consistency/lcm-lora-sdv1-5's pytorch_lora_weights.safetensors is (kohya names
# "lora_unet_<module with '_'>" with .lora_down.weight / .lora_up.weight / .alpha, float16, UNet only, on the
# modules its training script targets: attention projections, proj_in/out, feed-forward, resnet convolutions and
# shortcuts, time_emb_proj, down/up-sampler convolutions), then
#
#   pipe.load_lora_weights(FILE); pipe.fuse_lora(); pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
#   pipe(PROMPT, num_inference_steps=4, guidance_scale=1.0, generator=torch.Generator("cpu").manual_seed(0), 64x64)
#
# Versions: diffusers 0.29.2, transformers 4.40.2, peft 0.11.1, torch 2.x CPU (PyPI), float32, one thread.
#
#   KAKUSAN_GOLDEN_DIR=/work/shared/golden /work/venv/bin/python tests/golden/lcm_lora/make_golden.py
#
# Writes, next to this script:
#   lcm_lora_tiny.safetensors   the LoRA (rank 1 to stay small, alpha 2: scale alpha / rank = 2)
#   pipe_lcm_lora.safetensors   latents, image (NHWC, [0, 1]), timesteps, latents_after_step [4, 1, 4, 8, 8]
import os
import pathlib

import numpy as np
import torch
from diffusers import LCMScheduler, StableDiffusionPipeline
from safetensors.torch import save_file

torch.set_num_threads(1)
HERE = pathlib.Path(__file__).resolve().parent
KIT = pathlib.Path(os.environ["KAKUSAN_GOLDEN_DIR"])
PROMPT = "portrait photo of a old warrior chief"
RANK, ALPHA = 1, 2.0
# The module names LCM-LoRA adapts (the lora_target_modules of diffusers' LCM distillation scripts).
TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2",
           "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj")


def make_lora(unet):
    generator = torch.Generator("cpu").manual_seed(19)
    tensors = {}
    for name, module in unet.named_modules():
        if not name.endswith(TARGETS) or not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        weight = module.weight
        kernel = tuple(weight.shape[2:])  # () for a linear layer
        down = torch.randn((RANK, weight.shape[1]) + kernel, generator=generator) * 0.3
        up = torch.randn((weight.shape[0], RANK) + (1,) * len(kernel), generator=generator) * 0.3
        stem = "lora_unet_" + name.replace(".", "_")
        tensors[stem + ".lora_down.weight"] = down.half()
        tensors[stem + ".lora_up.weight"] = up.half()
        tensors[stem + ".alpha"] = torch.tensor(ALPHA).half()
    return tensors


def main():
    os.umask(0o022)
    pipe = StableDiffusionPipeline.from_pretrained(str(KIT / "tiny-sd"), safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    lora = make_lora(pipe.unet)
    save_file(lora, str(HERE / "lcm_lora_tiny.safetensors"))
    print(len(lora) // 3, "layers")
    pipe.load_lora_weights(str(HERE), weight_name="lcm_lora_tiny.safetensors")
    pipe.fuse_lora()
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    steps = []

    def on_step_end(p, i, t, kwargs):
        steps.append(kwargs["latents"].clone())
        return kwargs

    common = dict(prompt=PROMPT, height=64, width=64, num_inference_steps=4, guidance_scale=1.0)
    latents = pipe(**common, generator=torch.Generator("cpu").manual_seed(0), output_type="latent",
                   callback_on_step_end=on_step_end).images
    image = pipe(**common, generator=torch.Generator("cpu").manual_seed(0), output_type="np").images
    save_file({"latents": latents.contiguous(), "image": torch.from_numpy(np.ascontiguousarray(image)),
               "timesteps": pipe.scheduler.timesteps.clone(), "latents_after_step": torch.stack(steps)},
              str(HERE / "pipe_lcm_lora.safetensors"))
    for path in HERE.glob("*.safetensors"):
        path.chmod(0o644)  # safetensors writes 0600


if __name__ == "__main__":
    main()
