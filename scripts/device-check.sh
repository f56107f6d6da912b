#!/usr/bin/env bash
# The CUDA device check: everything `--device cuda` promises, measured on a lent GPU machine in one command.
#
#   here, on the build machine:  scripts/device-check.sh pack
#       builds build-device/ (CUDA on, sm_90, no -march=native: the GPU machine's CPU is another one), and
#       packs the kakusan CLI, the cuda test binary, the shared libraries they need beyond glibc and CUDA's
#       own (oneDNN, OpenBLAS, ICU, libpng ...), the golden kit ($KAKUSAN_GOLDEN_DIR) and, when pip can get
#       it, a diffusers wheel into .device-check/bundle.tar.xz (ignored by git; carry `.device-check`).
#   there, on the GPU machine:   scripts/device-check.sh
#       prints `nvidia-smi -L`, then one JSON line per measurement: the cuda tests (the kit's pipeline cases
#       on the GPU in fp32 and fp16, every op against the reference), a random SD1.5 made there in fp16,
#       `kakusan bench --device cuda` at 512x512 batch 1 (50 steps) and batch 8 (20 steps) with CUDA graphs,
#       batch 1 (20 steps) without them, batch 1 with --offload model (one step), and diffusers' UNet on the
#       same folder (fp16, SDPA, eager) when torch and diffusers import; before them, the convolution layout
#       probe (NCHW vs NHWC, descriptor vs graph API, per SD1.5 shape). Logs go to
#       $KAKUSAN_DEVICE_WORK/logs, and with $OUT set (the device tool) results.jsonl, test_cuda.log/.json
#       and logs.tar.gz are copied there. Each step has its own time limit (600 s in all, for a hang; the expected
#       total is under 6 minutes): give the device tool's run a timeout_s of 600.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARRY="$ROOT/.device-check"
# The diffusers timed on the GPU: a release that imports with the GPU image's torch 2.11 and huggingface_hub 1.x
# (the goldens' 0.29.2 predates both and may not import there); any version: DIFFUSERS_VERSION=... scripts/device-check.sh pack.
DIFFUSERS_VERSION=${DIFFUSERS_VERSION:-0.42.1}

pack() {
  set -e
  # KAKUSAN_DEVICE_BUILD: pack an existing build folder instead (it must not use -march=native of this CPU).
  local build="${KAKUSAN_DEVICE_BUILD:-$ROOT/build-device}" stage
  if [[ -z "${KAKUSAN_DEVICE_BUILD:-}" ]]; then
    cmake -S "$ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKAKUSAN_NATIVE=OFF -DKAKUSAN_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DKAKUSAN_BUILD_BENCH=OFF \
      -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache >/dev/null
    nice cmake --build "$build" -j"${JOBS:-2}" --target kakusan_cli test_cuda
  fi
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/lib" "$stage/whl"
  cp "$build/kakusan" "$build/tests/cuda/test_cuda" "$stage/bin/"
  strip "$stage/bin/"*  # the device tool carries 64 MiB in all, the working tree included
  # Every shared library the two programs load, except the C library's own and CUDA's (the GPU machine has
  # its driver, cuBLAS and cuDNN; a copy of cuBLASLt alone is 500 MB).
  ldd "$build/kakusan" "$build/tests/cuda/test_cuda" | awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libcuda|libcublas[^/]*|libcudnn[^/]*)\.so' |
    xargs -I{} cp -L {} "$stage/lib/"
  : "${KAKUSAN_GOLDEN_DIR:?set KAKUSAN_GOLDEN_DIR to the golden kit}"
  # The kit less what test_cuda never reads (component, scheduler and RNG tensors: their tolerances are in
  # manifest.json).
  cp -r "$KAKUSAN_GOLDEN_DIR" "$stage/golden"
  rm -rf "$stage/golden/components" "$stage/golden/schedulers" "$stage/golden/rng"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$stage/whl" "diffusers==$DIFFUSERS_VERSION" ||
    echo "device-check pack: no diffusers wheel (pip failed); the diffusers comparison will be skipped" >&2
  mkdir -p "$CARRY"
  tar -C "$stage" -cf - . | xz -T2 -9e >"$CARRY/bundle.tar.xz"
  rm -rf "$stage"
  echo "device-check pack: $(du -h "$CARRY/bundle.tar.xz" | cut -f1) in $CARRY/bundle.tar.xz; carry .device-check"
}

# One JSON line from key=value pairs (values that parse as JSON stay numbers/objects, others are strings).
json() {
  python3 - "$@" <<'PY'
import json, sys
out = {}
for arg in sys.argv[1:]:
    key, value = arg.split("=", 1)
    try:
        out[key] = json.loads(value)
    except ValueError:
        out[key] = value
print(json.dumps(out))
PY
}

emit() { json "$@" | tee -a "$RESULTS"; }

# The last line of a kakusan bench run (its JSON), with the measurement's name and the GPU in front.
bench() {
  local name=$1 LIMIT=$2
  shift 2
  local t0=$SECONDS line
  line=$(timeout "$LIMIT" "$W/bin/kakusan" bench --model "$W/sd15" --device cuda "$@" 2>"$LOGS/$name.err" | tail -1)
  if [[ "$line" != "{"* ]]; then
    emit measurement="$name" error="$(tail -3 "$LOGS/$name.err" | tr '\n' ' ')" seconds=$((SECONDS - t0))
    return 1
  fi
  python3 -c 'import json,sys; d=json.loads(sys.argv[3]); print(json.dumps({"measurement": sys.argv[1], "gpu": sys.argv[2], "command": sys.argv[4], **d}))' \
    "$name" "$GPU" "$line" "kakusan bench --model sd15-random-fp16 --device cuda $*" | tee -a "$RESULTS"
}

run() {
  W=${KAKUSAN_DEVICE_WORK:-/tmp/kakusan-device-check}
  LOGS="$W/logs"
  # With $OUT (the device tool) the results are written there as they come: a run killed at its limit still
  # returns every line so far.
  RESULTS="${OUT:-$LOGS}/results.jsonl"
  rm -rf "$W/bin" "$W/lib" "$W/golden" "$W/whl" "$LOGS"
  mkdir -p "$W" "$LOGS"
  : >"$RESULTS"
  # What comes back from the device tool ($OUT: at most 8 files): the results, the test log and report, and
  # every log in one archive.
  trap 'if [[ -n "${OUT:-}" ]]; then cp "$LOGS"/test_cuda.{log,json} "$OUT"/ 2>/dev/null; tar -C "$W" -czf "$OUT/logs.tar.gz" logs; fi' EXIT
  local start=$SECONDS
  nvidia-smi -L || true
  GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  emit measurement=device gpu="${GPU:-none}" \
    driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)" \
    memory="$(nvidia-smi --query-gpu=memory.total --format=csv,noheader 2>/dev/null | head -1)"

  [[ -f "$CARRY/bundle.tar.xz" ]] || { emit measurement=setup error="no $CARRY/bundle.tar.xz: run 'scripts/device-check.sh pack' on the build machine and carry .device-check"; return 1; }
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$CARRY/bundle.tar.xz" "$W"
  # cuBLASLt and cuDNN from the machine (and NVRTC, which cuDNN opens for its runtime-fusion engines: the
  # graph-API convolutions): the CUDA toolkit's folder and PyTorch's nvidia-* wheels.
  local cuda_libs
  cuda_libs=$(python3 - <<'PY' 2>/dev/null
import importlib, os
dirs = []
for name in ("nvidia.cublas", "nvidia.cudnn", "nvidia.cuda_runtime", "nvidia.cuda_nvrtc", "nvidia.cu13"):
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    for base in list(getattr(module, "__path__", [])):
        for sub in ("lib", "lib64"):
            if os.path.isdir(os.path.join(base, sub)):
                dirs.append(os.path.join(base, sub))
print(":".join(dirs))
PY
  )
  export LD_LIBRARY_PATH="$W/lib:${cuda_libs}:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
  local missing
  missing=$(ldd "$W/bin/kakusan" "$W/bin/test_cuda" | grep "not found" | sort -u | tr -s ' \t\n' ' ')
  if [[ -n "$missing" ]]; then
    emit measurement=setup error="libraries not found: $missing"
    return 1
  fi

  # 1. The cuda tests: golden pipeline cases in fp32 (CPU tolerances) and fp16 (deviation lines), every op.
  #    The convolution layout probe runs on its own (1b), with its own limit.
  local t0=$SECONDS
  KAKUSAN_GOLDEN_DIR="$W/golden" timeout 120 "$W/bin/test_cuda" --gtest_filter='-CudaConvProbe.*' \
    --gtest_output="json:$LOGS/test_cuda.json" >"$LOGS/test_cuda.log" 2>&1
  local rc=$?
  grep '^{"case"' "$LOGS/test_cuda.log" | python3 -c 'import json,sys
for line in sys.stdin:
    d = json.loads(line); print(json.dumps({"measurement": "fp16_image_deviation", **d}))' | tee -a "$RESULTS"
  grep '^{"measurement": "attention_f16"' "$LOGS/test_cuda.log" | tee -a "$RESULTS"  # tensor vs CUDA cores, ms
  grep '^{"graphs_case"' "$LOGS/test_cuda.log" | python3 -c 'import json,sys
for line in sys.stdin:
    d = json.loads(line); print(json.dumps({"measurement": "cuda_graphs_vs_eager", **d}))' | tee -a "$RESULTS"
  python3 - "$LOGS/test_cuda.json" "$rc" "$((SECONDS - t0))" <<'PY' | tee -a "$RESULTS"
import json, sys
path, rc, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
counts = {"passed": 0, "failed": 0, "skipped": 0}
failed = []
try:
    report = json.load(open(path))
    for suite in report.get("testsuites", []):
        for test in suite.get("testsuite", []):
            name = suite["name"] + "." + test["name"]
            if test.get("failures"):
                counts["failed"] += 1
                failed.append(name)
            elif test.get("result") == "SKIPPED" or test.get("status") == "NOTRUN":
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
except (OSError, ValueError) as e:
    failed.append(f"no report: {e}")
print(json.dumps({"measurement": "cuda_tests", "exit_code": rc, "seconds": seconds, **counts, "failed_tests": failed[:40]}))
PY

  # 1b. NCHW or NHWC, by measurement: SD1.5's convolutions through cuDNN in both layouts, descriptor and graph API
  #     (tests/cuda/test_cuda_conv_probe.cpp: one conv_layout_f16 line per shape, a _total line per model).
  t0=$SECONDS
  timeout 20 "$W/bin/test_cuda" --gtest_filter='CudaConvProbe.*' >"$LOGS/conv_probe.log" 2>&1
  rc=$?
  grep '^{"measurement": "conv_' "$LOGS/conv_probe.log" | tee -a "$RESULTS"
  emit measurement=conv_probe_run exit_code=$rc seconds=$((SECONDS - t0)) \
    last_lines="$(grep -v '^{' "$LOGS/conv_probe.log" | tail -3 | tr '\n' ' ')"

  # 2. A random SD1.5 in fp16, made here (2 GB: too big to carry).
  t0=$SECONDS
  # (KAKUSAN_DEVICE_MODEL_CONFIG=tiny: a dry run of this script on a machine without a GPU.)
  if timeout 90 "$W/bin/kakusan" make-random-model --config "${KAKUSAN_DEVICE_MODEL_CONFIG:-sd15}" --dtype fp16 --out "$W/sd15" >"$LOGS/make_model.log" 2>&1; then
    emit measurement=make_random_model seconds=$((SECONDS - t0))
  else
    emit measurement=make_random_model error="$(tail -2 "$LOGS/make_model.log" | tr '\n' ' ')"
    return 1
  fi

  # 3. kakusan on the GPU: the tutorial's 512x512 image (50 steps) and its batch of 8 (20 steps).
  #    CUDA graphs are on (the default: the UNet step captured once and replayed); one line without, to compare.
  if ! bench kakusan_bench_b1_50steps 80 --height 512 --width 512 --batch 1 --steps 50 --profile; then
    # Tell a fault of the newer paths from the rest: the same image on the CUDA-core attention and cuDNN's
    # descriptor-API convolutions, every kernel launched eagerly.
    KAKUSAN_CUDA_ATTENTION=cuda-cores KAKUSAN_CUDA_CONV=descriptor bench kakusan_bench_b1_20steps_cuda_cores_eager 40 \
      --height 512 --width 512 --batch 1 --steps 20 --cuda-graphs off
  fi
  bench kakusan_bench_b8_20steps 90 --height 512 --width 512 --batch 8 --steps 20
  bench kakusan_bench_b1_20steps_graphs_off 50 --height 512 --width 512 --batch 1 --steps 20 --cuda-graphs off
  # --offload model (enable_model_cpu_offload): one UNet step timed, each phase's weights uploaded for it; its
  # gpu_peak_mb against the first line's.
  bench kakusan_bench_b1_offload_model 30 --height 512 --width 512 --batch 1 --offload model

  # 4. diffusers' UNet on the same folder, in the same run.
  if compgen -G "$W/whl/*.whl" >/dev/null && ! python3 -c "import diffusers" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$W/site" "$W"/whl/*.whl \
      >"$LOGS/pip.log" 2>&1 && export PYTHONPATH="$W/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if python3 -c "import torch, diffusers" 2>"$LOGS/diffusers_import.log"; then
    for batch in 1 8; do
      t0=$SECONDS
      if ! timeout 40 python3 "$ROOT/bench/diffusers_unet.py" --model "$W/sd15" --batch "$batch" \
          --repeats $((batch == 1 ? 50 : 20)) 2>"$LOGS/diffusers_b$batch.err" | tee -a "$RESULTS"; then
        emit measurement="diffusers_unet_step_b$batch" error="$(tail -2 "$LOGS/diffusers_b$batch.err" | tr '\n' ' ')"
      fi
    done
  else
    emit measurement=diffusers_unet skipped="python3 -c 'import torch, diffusers' failed: $(tail -1 "$LOGS/diffusers_import.log")"
  fi
  emit measurement=device_check seconds=$((SECONDS - start))
}

case "${1:-run}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: scripts/device-check.sh [pack|run]" >&2; exit 2 ;;
esac
