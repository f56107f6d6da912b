#!/usr/bin/env python3
# torch's profiler on diffusers' UNet, one CFG-batch call (docs/peers.md, sittings E and F): the per-op table
# (by input shapes) to set beside `kakusan bench --profile`. Reference tooling only (diffusers and torch from
# PyPI, as diffusers_cpu.py).
#
#   python3 bench/peers/torch_profile.py --model DIR [--dtype bf16|fp32] [--threads 2] [--size 512]
import argparse
import time

import torch
from diffusers import UNet2DConditionModel


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="diffusers folder (its unet/ is loaded)")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=512, help="image size; the latents are size / 8")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    unet = UNet2DConditionModel.from_pretrained(args.model, subfolder="unet", torch_dtype=dtype).eval()
    side = args.size // 8
    latents = torch.randn(2, unet.config.in_channels, side, side, dtype=dtype)
    text = torch.randn(2, 77, unet.config.cross_attention_dim, dtype=dtype)
    timestep = torch.tensor(500)
    with torch.inference_mode():
        unet(latents, timestep, encoder_hidden_states=text)  # warm-up
        start = time.perf_counter()
        unet(latents, timestep, encoder_hidden_states=text)
        print(f"one call: {time.perf_counter() - start:.2f} s")
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
            unet(latents, timestep, encoder_hidden_states=text)
    averages = prof.key_averages(group_by_input_shape=True)
    print(averages.table(sort_by="self_cpu_time_total", row_limit=45, max_name_column_width=40,
                         max_shapes_column_width=90))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
