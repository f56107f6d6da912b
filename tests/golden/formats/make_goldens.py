#!/usr/bin/env python3
"""Goldens for kakusan's checkpoint formats (issue 17), made by diffusers / PEFT themselves.

Versions: diffusers 0.29.2, transformers 4.40.2, peft 0.11.1, torch (PyPI, CPU), safetensors.
Run:  /work/venv/bin/python tests/golden/formats/make_goldens.py --kit /work/shared/golden \
          --convert-script PATH/TO/diffusers/scripts/convert_diffusers_to_original_stable_diffusion.py

1. single_file_<model>.json: the single file diffusers' own conversion script
   (scripts/convert_diffusers_to_original_stable_diffusion.py of the diffusers repository, which pip's package
   does not ship; pass its path) makes from the kit's tiny-sd / tiny-sd-v folder, written as a name map
   (file tensor -> the folder tensor(s) it holds, stored shape) rather than as 20 MB of weights: the test
   rebuilds the file from the folder with it. tiny-sd-v goes through the script's SD 2.x (OpenCLIP) text
   encoder conversion, which the script picks only for 23-layer encoders, and gets a text_projection as
   real SD 2.x files carry. The images to match are the folder's (the kit's pipeline goldens).
"""
import argparse
import importlib.util
import json
import os

import torch
from safetensors.torch import load_file


def load_script(path):
    spec = importlib.util.spec_from_file_location("convert_d2o", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tagged(state):
    """Each tensor replaced by a marker tensor whose values name it, so the converted dict tells where every
    file tensor came from (the script only renames, reshapes and concatenates)."""
    names = sorted(state)
    return names, {k: torch.full((state[k].shape[0] if state[k].dim() else 1,), float(i)) for i, k in enumerate(names)}


def name_map(script, folder, open_clip):
    entries = []
    for component, file, convert, prefix in [
        ("unet", "unet/diffusion_pytorch_model.safetensors", script.convert_unet_state_dict, "model.diffusion_model."),
        ("vae", "vae/diffusion_pytorch_model.safetensors", script.convert_vae_state_dict, "first_stage_model."),
    ]:
        state = load_file(os.path.join(folder, file))
        converted = convert(dict(state))
        # identity of tensors survives the renames; reshape creates a view of the same storage
        by_ptr = {v.data_ptr(): k for k, v in state.items()}
        for name, tensor in sorted(converted.items()):
            entries.append({"name": prefix + name, "component": component, "from": [by_ptr[tensor.data_ptr()]],
                            "shape": list(tensor.shape)})
    state = load_file(os.path.join(folder, "text_encoder/model.safetensors"))
    if open_clip:
        names, markers = tagged(state)
        converted = script.convert_text_enc_state_dict_v20({"transformer." + k: v for k, v in markers.items()})
        for name, marker in sorted(converted.items()):
            rows = [names[int(x)] for x in marker.tolist()]
            sources = list(dict.fromkeys(rows))  # q, k, v in order for the fused projection
            shape = [sum(state[s].shape[0] for s in sources)] + list(state[sources[0]].shape[1:])
            entries.append({"name": "cond_stage_model.model." + name, "component": "text_encoder", "from": sources,
                            "shape": shape})
        hidden = state["text_model.final_layer_norm.weight"].shape[0]
        # Real SD 2.x files carry OpenCLIP's text projection (diffusers' CLIPTextModel leaves it out).
        entries.append({"name": "cond_stage_model.model.text_projection", "component": "text_encoder", "from": [],
                        "shape": [hidden, hidden]})
    else:
        for name in sorted(script.convert_text_enc_state_dict(dict(state))):
            entries.append({"name": "cond_stage_model.transformer." + name, "component": "text_encoder",
                            "from": [name], "shape": list(state[name].shape)})
    return entries


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kit", default="/work/shared/golden")
    parser.add_argument("--convert-script", required=True)
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args()
    torch.manual_seed(0)
    script = load_script(args.convert_script)
    for model, open_clip in [("tiny-sd", False), ("tiny-sd-v", True)]:
        entries = name_map(script, os.path.join(args.kit, model), open_clip)
        with open(os.path.join(args.out, f"single_file_{model}.json"), "w") as f:
            json.dump({"model": model, "tensors": entries}, f, separators=(",", ":"))
            f.write("\n")
        print(model, len(entries), "tensors")


if __name__ == "__main__":
    main()
