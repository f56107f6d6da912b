#!/usr/bin/env bash
# kakusan against its CPU peers (docs/peers.md): runs the contenders ALTERNATELY, round after round, each under
# `/usr/bin/time -v`, and prints one JSON line per run (bench/peers/parse_run.py) with the load average read
# just before it. Alternating spreads the noise of a shared machine over every contender alike.
#
#   bench/peers/run.sh --kakusan build/kakusan --sdcpp /path/to/sd-cli --python /path/to/venv/bin/python \
#       --fp16-dir /tmp/sd15-fp16 --fp32-dir /tmp/sd15-fp32 \
#       --fp16-file /tmp/sd15-fp16.safetensors --fp32-file /tmp/sd15-fp32.safetensors \
#       [--rounds 3] [--first-round 1] [--threads 2] [--size 512] [--steps 20] [--sd-steps 4] [--logs DIR] \
#       [--runs "kakusan-fp16-step diffusers-fp32-step sdcpp-f16-step ..."]
#
# Runs (the order of --runs is the order within a round):
#   kakusan-{fp16,fp32,bf16}-step `kakusan bench`: one UNet step of the CFG batch (plus text encoder and VAE)
#   diffusers-{fp32,bf16}-step   diffusers_cpu.py --mode unet: the median of 3 UNet calls after 1 warm-up
#   sdcpp-{f16,f32}-step         sd-cli with --sd-steps steps: its per-step times
#   sdcpp-f16-fa-step            the same with sd-cli's --diffusion-fa (ggml's flash attention in the UNet)
#   kakusan-{fp16,fp32}-image    `kakusan generate`: a whole image, --steps DPM-Solver++ steps
#   diffusers-fp32-image         diffusers_cpu.py --mode image: the same
#   sdcpp-{f16,f32}-image        sd-cli: the same (dpm++2m sampler, discrete schedule)
# The folders need tokenizer/ for the image runs (kakusan generate and diffusers tokenize the prompt).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
rounds=3 first_round=1 threads=2 size=512 steps=20 sd_steps=4 logs="" runs=""
kakusan="" sdcpp="" python="" fp16_dir="" fp32_dir="" fp16_file="" fp32_file=""
prompt="portrait photo of a old warrior chief"
while (($#)); do
  case "$1" in
    --kakusan) kakusan=$2 ;; --sdcpp) sdcpp=$2 ;; --python) python=$2 ;;
    --fp16-dir) fp16_dir=$2 ;; --fp32-dir) fp32_dir=$2 ;; --fp16-file) fp16_file=$2 ;; --fp32-file) fp32_file=$2 ;;
    --rounds) rounds=$2 ;; --first-round) first_round=$2 ;; --threads) threads=$2 ;; --size) size=$2 ;;
    --steps) steps=$2 ;; --sd-steps) sd_steps=$2 ;; --logs) logs=$2 ;; --runs) runs=$2 ;;
    *) echo "run.sh: unknown option '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
runs=${runs:-"kakusan-fp16-step diffusers-fp32-step sdcpp-f16-step"}
logs=${logs:-$(mktemp -d)}
mkdir -p "$logs"

need() {  # need VALUE OPTION: a run asked for something the command line did not give
  [[ -n $1 ]] || { echo "run.sh: this run needs $2" >&2; exit 2; }
}

# The command line of one run, into the array `cmd`, and how its output is read, into `kind`.
command_of() {
  local name=$1 out=$2
  case "$name" in
    kakusan-fp16-step|kakusan-fp32-step|kakusan-bf16-step)
      local dt=${name#kakusan-}; dt=${dt%-step}
      # bf16 rounds the fp32 folder's weights, as diffusers-bf16-step does
      local dir; [[ $dt == fp16 ]] && dir=$fp16_dir || dir=$fp32_dir
      need "$kakusan" --kakusan; need "$dir" "--${dt/bf16/fp32}-dir"
      cmd=("$kakusan" bench --model "$dir" --height "$size" --width "$size" --dtype "$dt" --threads "$threads")
      kind=json ;;
    kakusan-fp16-image|kakusan-fp32-image)
      local dt=${name#kakusan-}; dt=${dt%-image}
      local dir; [[ $dt == fp16 ]] && dir=$fp16_dir || dir=$fp32_dir
      need "$kakusan" --kakusan; need "$dir" "--${dt}-dir"
      cmd=("$kakusan" generate --model "$dir" --dtype "$dt" --height "$size" --width "$size" --steps "$steps"
           --scheduler DPMSolverMultistepScheduler --guidance 7.5 --threads "$threads" --prompt "$prompt"
           --seed 1 --output "$out.png")
      kind=kakusan ;;
    diffusers-fp32-step|diffusers-bf16-step)
      local dt=${name#diffusers-}; dt=${dt%-step}
      need "$python" --python; need "$fp32_dir" --fp32-dir
      cmd=("$python" "$here/diffusers_cpu.py" --model "$fp32_dir" --mode unet --dtype "$dt" --threads "$threads"
           --height "$size" --width "$size")
      kind=json ;;
    diffusers-fp32-image)
      need "$python" --python; need "$fp32_dir" --fp32-dir
      cmd=("$python" "$here/diffusers_cpu.py" --model "$fp32_dir" --mode image --dtype fp32 --threads "$threads"
           --height "$size" --width "$size" --steps "$steps" --scheduler DPMSolverMultistepScheduler
           --prompt "$prompt" --seed 1 --output "$out.png")
      kind=json ;;
    sdcpp-f16-step|sdcpp-f32-step|sdcpp-f16-fa-step|sdcpp-f16-image|sdcpp-f32-image)
      local file n fa=()
      [[ $name == sdcpp-f16-* ]] && file=$fp16_file || file=$fp32_file
      [[ $name == *-step ]] && n=$sd_steps || n=$steps
      [[ $name == *-fa-* ]] && fa=(--diffusion-fa)
      need "$sdcpp" --sdcpp; need "$file" "--fp16-file/--fp32-file"
      cmd=("$sdcpp" -m "$file" -p "$prompt" -H "$size" -W "$size" --steps "$n" --sampling-method dpm++2m
           --scheduler discrete --cfg-scale 7.5 -s 1 -t "$threads" -o "$out.png" "${fa[@]}")
      kind=sdcpp ;;
    *) echo "run.sh: unknown run '$name'" >&2; exit 2 ;;
  esac
}

for ((round = first_round; round < first_round + rounds; round++)); do
  for name in $runs; do
    out="$logs/$name-$round"
    command_of "$name" "$out"
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    /usr/bin/time -v -o "$out.time" "${cmd[@]}" >"$out.log" 2>&1 || true
    python3 "$here/parse_run.py" --kind "$kind" --log "$out.log" --time "$out.time" --name "$name" \
      --round "$round" --load "$load"
  done
done
