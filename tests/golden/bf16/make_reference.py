#!/usr/bin/env python3
# How far diffusers' own bf16 pipeline lands from the fp32 goldens: the yardstick for kakusan's --dtype bf16.
#
# Versions: diffusers 0.29.2, transformers 4.40.2, torch 2.x CPU (PyPI), one thread.
#
#   KAKUSAN_GOLDEN_DIR=/work/shared/golden /work/venv/bin/python tests/golden/bf16/make_reference.py
#
# Every pipeline case of the kit (manifest.json, "pipe_*" with a call) and the three LCM / TAESD pipeline
# goldens of tests/golden/lcm and tests/golden/taesd are run again with diffusers, once in float32 and once
# with torch_dtype=torch.bfloat16 (weights, activations and products in bf16, as a user gets it), with the
# case's scheduler, generator and attention processor. Written next to this script:
#   diffusers_bf16.json  per case: image_max / image_mean = max and mean |bf16 image - fp32 golden image|
#                        (images in [0, 1]); fp32_max = the same for the float32 re-run (this torch vs the
#                        kit's), showing how much of the figure is bf16's.
import json
import os
import pathlib

import numpy as np
import torch
from diffusers import AutoencoderKL, AutoencoderTiny, LCMScheduler, StableDiffusionPipeline
import diffusers
from diffusers.models.attention_processor import AttnProcessor
from safetensors.numpy import load_file

torch.set_num_threads(1)
HERE = pathlib.Path(__file__).resolve().parent
KIT = pathlib.Path(os.environ["KAKUSAN_GOLDEN_DIR"])
MANIFEST = json.loads((KIT / "manifest.json").read_text())


def generators(text):
    # The three forms the kit's manifest writes.
    if text.startswith("torch.Generator('cpu').manual_seed("):
        return torch.Generator("cpu").manual_seed(int(text.split("(")[-1].rstrip(")")))
    if text.startswith("[Generator().manual_seed(s) for s in "):
        seeds = json.loads(text[len("[Generator().manual_seed(s) for s in "):-1])
        return [torch.Generator().manual_seed(s) for s in seeds]
    if text.startswith("[g]*4, g = Generator().manual_seed("):
        g = torch.Generator().manual_seed(int(text.split("(")[-1].rstrip(")")))
        return [g] * 4
    raise ValueError(text)


def kit_pipeline(params, dtype):
    pipe = StableDiffusionPipeline.from_pretrained(KIT / params["model"], torch_dtype=dtype, safety_checker=None)
    if params.get("vae"):
        pipe.vae = AutoencoderKL.from_pretrained(KIT / params["vae"], torch_dtype=dtype)
    pipe.scheduler = getattr(diffusers, params["scheduler"]).from_config(params["scheduler_config"])
    pipe.unet.set_attn_processor(AttnProcessor())
    pipe.vae.set_attn_processor(AttnProcessor())
    if params["attention_processors"] == ["SlicedAttnProcessor"]:
        pipe.enable_attention_slicing()
    return pipe


def lcm_pipeline(dtype, vae):
    pipe = StableDiffusionPipeline.from_pretrained(KIT / "tiny-sd", torch_dtype=dtype, safety_checker=None)
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    if vae:
        pipe.vae = AutoencoderTiny.from_pretrained(vae, torch_dtype=dtype)
    pipe.unet.set_attn_processor(AttnProcessor())
    return pipe


def image_of(pipe, call, generator):
    out = pipe(**call, generator=generator, output_type="np")
    return np.asarray(out.images, dtype=np.float32)  # NHWC in [0, 1]


def errors(bf16, fp32, golden):
    return {"image_max": float(np.abs(bf16 - golden).max()), "image_mean": float(np.abs(bf16 - golden).mean()),
            "fp32_max": float(np.abs(fp32 - golden).max())}


def main():
    results = {}
    for case in MANIFEST["cases"]:
        params = case["params"]
        if not case["id"].startswith("pipe_") or "call" not in params:
            continue
        golden = load_file(KIT / case["file"])["image"]
        images = {d: image_of(kit_pipeline(params, d), params["call"], generators(params["generator"]))
                  for d in (torch.float32, torch.bfloat16)}
        results[case["id"]] = errors(images[torch.bfloat16], images[torch.float32], golden.reshape(images[torch.float32].shape))
        print(case["id"], results[case["id"]], flush=True)
    lcm = {"pipe_lcm_g1": (HERE.parent / "lcm/pipe_lcm_g1.safetensors", 1.0, None),
           "pipe_lcm_g2": (HERE.parent / "lcm/pipe_lcm_g2.safetensors", 2.0, None),
           "pipe_taesd": (HERE.parent / "taesd/pipe_taesd.safetensors", 1.0, HERE.parent / "taesd/tiny-taesd")}
    for name, (file, guidance, vae) in lcm.items():
        golden = load_file(file)["image"]
        call = {"prompt": "portrait photo of a old warrior chief", "num_inference_steps": 4, "guidance_scale": guidance,
                "height": 64, "width": 64}
        images = {d: image_of(lcm_pipeline(d, vae), call, torch.Generator("cpu").manual_seed(0))
                  for d in (torch.float32, torch.bfloat16)}
        results[name] = errors(images[torch.bfloat16], images[torch.float32], golden.reshape(images[torch.float32].shape))
        print(name, results[name], flush=True)
    (HERE / "diffusers_bf16.json").write_text(json.dumps(
        {"versions": {"diffusers": diffusers.__version__, "torch": torch.__version__}, "cases": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
