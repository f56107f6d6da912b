#!/usr/bin/env python3
# Turns one contender run of bench/peers/run.sh into one JSON line: the wall time, CPU time and peak RSS that
# `/usr/bin/time -v` measured for the whole process, plus what the contender itself reported:
#   json    the last JSON line the program printed (`kakusan bench`, bench/peers/diffusers_cpu.py);
#   kakusan `kakusan generate`'s progress lines ("denoising 3/20  3.81 s/it", a running mean): per-step seconds;
#   sdcpp   stable-diffusion.cpp's progress bar ("3/20 - 5.12s/it") and its phase lines ("sampling completed,
#           taking 101.2s"): per-step seconds.
# Per-step medians leave out the first step (it includes the first-use allocations of both programs).
# Standard library only.
#
#   parse_run.py --kind json|kakusan|sdcpp --log STDOUT_AND_STDERR --time TIME_V_FILE --name NAME --round N
#                --load "0.52 0.71 0.80"
import argparse
import json
import re
import statistics


def time_v(path):
    """Wall seconds, user + system seconds, peak RSS (MB) and exit status from GNU time's -v report."""
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {}
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if wall:
        seconds = 0.0
        for part in wall.group(1).split(":"):
            seconds = seconds * 60 + float(part)
        out["wall_s"] = round(seconds, 2)
    user = re.search(r"User time \(seconds\): ([\d.]+)", text)
    system = re.search(r"System time \(seconds\): ([\d.]+)", text)
    if user and system:
        out["cpu_s"] = round(float(user.group(1)) + float(system.group(1)), 2)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if rss:
        out["peak_rss_mb"] = round(int(rss.group(1)) / 1024, 1)
    status = re.search(r"Exit status: (\d+)", text)
    out["exit_status"] = int(status.group(1)) if status else -1
    return out


def step_figures(seconds_per_step):
    """Median and every value of the per-step seconds, the first step left out when there are others."""
    if not seconds_per_step:
        return {}
    steady = seconds_per_step[1:] if len(seconds_per_step) > 1 else seconds_per_step
    return {"step_s_median": round(statistics.median(steady), 3),
            "step_s_all": [round(s, 3) for s in seconds_per_step]}


def last_json(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            return json.loads(line)
    return {}


def kakusan_figures(text):
    # Each progress line gives the phase's running mean (elapsed / steps done, 2 decimals); the differences of
    # the running totals are the single steps (within +-0.01 s x steps done), the last total the whole loop.
    totals = {}
    for done, seconds in re.findall(r"denoising\s+(\d+)/\d+\s+([\d.]+) s/it", text):
        if int(done) > 0:
            totals[int(done)] = int(done) * float(seconds)
    if not totals:
        return {}
    done = sorted(totals)
    steps = [totals[k] - (totals[done[i - 1]] if i else 0.0) for i, k in enumerate(done)]
    return {**step_figures(steps), "loop_s": round(totals[done[-1]], 2)}


def sdcpp_figures(text):
    # The bar is redrawn with '\r'; each redraw names the step it finished and that step's own time.
    steps = {}
    for done, value, unit in re.findall(r"(\d+)/\d+ - ([\d.]+)(s/it|it/s)", text):
        steps[int(done)] = float(value) if unit == "s/it" else 1.0 / float(value)
    out = step_figures([steps[k] for k in sorted(steps)])
    for key, pattern in (("text_encoder_s", r"get_learned_condition completed, taking ([\d.]+)s"),
                         ("sampling_s", r"sampling completed, taking ([\d.]+)s"),
                         ("vae_decode_s", r"decode_first_stage completed, taking ([\d.]+)s"),
                         ("generate_s", r"generate_image completed in ([\d.]+)s")):
        found = re.findall(pattern, text)
        if found:
            out[key] = float(found[-1])
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["json", "kakusan", "sdcpp"], required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--time", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--round", type=int, required=True)
    parser.add_argument("--load", default="", help="the 1/5/15-minute load averages before the run")
    args = parser.parse_args()

    text = open(args.log, encoding="utf-8", errors="replace").read()
    record = {"run": args.name, "round": args.round, "load_before": args.load}
    record.update(time_v(args.time))
    if args.kind == "json":
        reported = last_json(text)
        # The process-wide peak from time -v is the one compared; keep the program's own under another name.
        if "peak_rss_mb" in reported:
            reported["self_peak_rss_mb"] = reported.pop("peak_rss_mb")
        record["reported"] = reported
    elif args.kind == "kakusan":
        record.update(kakusan_figures(text))
    else:
        record.update(sdcpp_figures(text))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
