#!/usr/bin/env python3
# diffusers on torch's CPU backend, the peer kakusan is measured against (docs/peers.md). It reads the same model
# folder kakusan reads (a random SD 1.5 from `kakusan make-random-model`, the tokenizer copied in) and prints one
# JSON line. Written against diffusers 0.29.2 / transformers 4.40.2 / torch 2.x; nothing is downloaded.
#
#   unet:  one UNet call on the classifier-free-guidance batch (2 x batch), as `kakusan bench` times its UNet
#          step: --warmup untimed calls, then the median of --repeats timed ones.
#   image: a whole StableDiffusionPipeline call (prompt -> PIL image, --steps with --scheduler, guidance 7.5),
#          as `kakusan generate` makes one; load time is reported apart.
#
#   python3 bench/peers/diffusers_cpu.py --model DIR --mode unet [--dtype fp32|bf16] [--threads 2]
#   python3 bench/peers/diffusers_cpu.py --model DIR --mode image --steps 20 [--output out.png]
import argparse
import json
import resource
import statistics
import time

import diffusers
import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def attention_processor(unet):
    """The attention implementation diffusers picked (AttnProcessor2_0 = torch's scaled_dot_product_attention)."""
    names = {type(p).__name__ for p in unet.attn_processors.values()}
    return ",".join(sorted(names))


def time_unet(args, dtype):
    load_start = time.perf_counter()
    unet = diffusers.UNet2DConditionModel.from_pretrained(args.model, subfolder="unet", torch_dtype=dtype).eval()
    load_s = time.perf_counter() - load_start
    cfg_batch = 2 * args.batch
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(cfg_batch, unet.config.in_channels, args.height // 8, args.width // 8,
                         generator=generator).to(dtype)
    context = torch.randn(cfg_batch, 77, unet.config.cross_attention_dim, generator=generator).to(dtype)
    timestep = torch.tensor(981)
    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.repeats):
            start = time.perf_counter()
            unet(sample, timestep, encoder_hidden_states=context).sample
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    return {
        "unet_batch": cfg_batch,
        "attention": attention_processor(unet),
        "load_s": round(load_s, 3),
        "unet_step_s": round(statistics.median(times), 4),
        "unet_step_runs_s": [round(t, 4) for t in times],
    }


def time_image(args, dtype):
    load_start = time.perf_counter()
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(args.model, torch_dtype=dtype, safety_checker=None)
    if args.scheduler:
        pipe.scheduler = getattr(diffusers, args.scheduler).from_config(pipe.scheduler.config)
    load_s = time.perf_counter() - load_start
    generator = torch.Generator().manual_seed(args.seed)
    # Each step's end is stamped by diffusers' step callback; the first interval also holds the prompt's encoding.
    stamps = [time.perf_counter()]

    def stamp(pipeline, step, timestep, callback_kwargs):
        stamps.append(time.perf_counter())
        return callback_kwargs

    with torch.inference_mode():
        image = pipe(args.prompt, height=args.height, width=args.width, num_inference_steps=args.steps,
                     guidance_scale=7.5, generator=generator, callback_on_step_end=stamp).images[0]
    end = time.perf_counter()
    steps_s = [b - a for a, b in zip(stamps, stamps[1:])]
    if args.output:
        image.save(args.output)
    return {
        "scheduler": type(pipe.scheduler).__name__,
        "steps": args.steps,
        "attention": attention_processor(pipe.unet),
        "load_s": round(load_s, 3),
        "generate_s": round(end - stamps[0], 3),
        "step_s_median": round(statistics.median(steps_s[1:] or steps_s), 3),
        "step_s_all": [round(t, 3) for t in steps_s],
        "vae_decode_s": round(end - stamps[-1], 3),  # the decode and the conversion to a PIL image
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="diffusers folder (with tokenizer/ for --mode image)")
    parser.add_argument("--mode", choices=["unet", "image"], required=True)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="torch_dtype (CPU default: fp32)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--batch", type=int, default=1, help="images; the UNet runs 2x with CFG")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--scheduler", default="DPMSolverMultistepScheduler", help="diffusers scheduler class")
    parser.add_argument("--prompt", default="portrait photo of a old warrior chief")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", default="", help="PNG to write in --mode image")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    figures = time_unet(args, dtype) if args.mode == "unet" else time_image(args, dtype)
    print(json.dumps({
        "contender": "diffusers",
        "mode": args.mode,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "height": args.height,
        "width": args.width,
        **figures,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }))


if __name__ == "__main__":
    main()
