#!/usr/bin/env python3
# diffusers' UNet on the GPU, timed the way `kakusan bench --device cuda` times kakusan's: the same model folder
# (a random SD1.5 from `kakusan make-random-model`), fp16 weights (torch_dtype=torch.float16), eager mode,
# PyTorch's SDPA attention (diffusers' default AttnProcessor2_0), one step = one UNet call on the CFG batch.
# Prints one JSON line. Written against diffusers 0.29.2 / torch 2.x; run by scripts/device-check.sh.
#
#   python3 bench/diffusers_unet.py --model /tmp/sd15 --batch 1 [--height 512 --width 512] [--repeats 50]
import argparse
import json
import statistics

import diffusers
import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch", type=int, default=1, help="images; the UNet runs 2x with CFG")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    unet = diffusers.UNet2DConditionModel.from_pretrained(args.model, subfolder="unet", torch_dtype=torch.float16)
    unet = unet.to("cuda").eval()
    cfg_batch = 2 * args.batch
    generator = torch.Generator("cuda").manual_seed(0)
    sample = torch.randn(cfg_batch, unet.config.in_channels, args.height // 8, args.width // 8, device="cuda",
                         dtype=torch.float16, generator=generator)
    context = torch.randn(cfg_batch, 77, unet.config.cross_attention_dim, device="cuda", dtype=torch.float16,
                          generator=generator)
    timestep = torch.tensor(981, device="cuda")

    times_ms = []
    with torch.inference_mode():
        for i in range(args.warmup + args.repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            unet(sample, timestep, encoder_hidden_states=context).sample
            end.record()
            torch.cuda.synchronize()
            if i >= args.warmup:
                times_ms.append(start.elapsed_time(end))
    step_ms = statistics.median(times_ms)
    print(json.dumps({
        "measurement": f"diffusers_unet_step_b{args.batch}",
        "device": torch.cuda.get_device_name(),
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "dtype": "fp16",
        "attention": "sdpa",
        "mode": "eager",
        "unet_batch": cfg_batch,
        "height": args.height,
        "width": args.width,
        "unet_step_ms_median": round(step_ms, 3),
        "unet_step_ms_min": round(min(times_ms), 3),
        "it_per_s": round(1000.0 / step_ms, 2),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 1e6, 1),
    }))


if __name__ == "__main__":
    main()
