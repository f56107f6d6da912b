#!/usr/bin/env python3
# Reads the JSON lines of bench/peers/run.sh and prints a Markdown table per run name: every run's figures and
# their medians. The per-step figure is what each contender reports for one classifier-free-guidance UNet step:
# `kakusan bench`'s unet_step_s, diffusers_cpu.py's median of its timed calls (or of its image's steps), sd.cpp's
# and `kakusan generate`'s per-step median (first step left out). Standard library only.
#
#   python3 bench/peers/summarize.py results.jsonl [more.jsonl ...]
import json
import statistics
import sys


def step_seconds(record):
    reported = record.get("reported", {})
    for key in ("unet_step_s", "step_s_median"):
        if key in reported:
            return reported[key]
    return record.get("step_s_median")


def peak_mb(record):
    # `kakusan bench` resets the high-water mark at each phase (its own per-phase figures); its UNet phase's peak
    # is the one to set against the others' step runs. Everything else: the process peak from time -v.
    reported = record.get("reported", {})
    return reported.get("unet_rss_mb", record.get("peak_rss_mb"))


def fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def main():
    records = [json.loads(line) for path in sys.argv[1:] for line in open(path, encoding="utf-8") if line.strip()]
    names = list(dict.fromkeys(r["run"] for r in records))
    print("| run | round | load before (1/5/15 min) | step s | wall s | peak RSS MB |")
    print("|---|---:|---|---:|---:|---:|")
    for name in names:
        runs = [r for r in records if r["run"] == name and r.get("exit_status") == 0]
        for r in runs:
            print(f"| {name} | {r['round']} | {r['load_before']} | {fmt(step_seconds(r))} | {fmt(r.get('wall_s'), 1)} "
                  f"| {fmt(peak_mb(r), 0)} |")
        medians = [statistics.median(values) if values else None
                   for values in ([v for v in map(f, runs) if v is not None]
                                  for f in (step_seconds, lambda r: r.get("wall_s"), peak_mb))]
        print(f"| **{name}** | median of {len(runs)} | | **{fmt(medians[0])}** | **{fmt(medians[1], 1)}** "
              f"| **{fmt(medians[2], 0)}** |")
    failed = [r for r in records if r.get("exit_status") != 0]
    for r in failed:
        print(f"\nfailed: {r['run']} round {r['round']} (exit status {r.get('exit_status')})")


if __name__ == "__main__":
    main()
