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
   real SD 2.x files carry. The images to match are the folder's (the kit's pipeline goldens). Note: the
   script renames the VAE attention only from diffusers' pre-0.14 names, so today's folders come out with
   "mid.attn_1.to_q.weight" [C, C] instead of the original "mid.attn_1.q.weight" [C, C, 1, 1]; kakusan reads
   both (the original form is covered by `kakusan convert` round trips).
2. lora_*.safetensors: two random LoRAs of tiny-sd made with PEFT (some UNet attentions, proj_in, a resnet conv1
   -- a conv LoRA --, text encoder attention: diffusers 0.29 loads a text-encoder LoRA only with q, k, v and out_proj), A in three formats: kohya/A1111 (diffusers' convert_state_dict_to_kohya,
   alpha 8 for rank 4), PEFT (lora_A/lora_B) and diffusers (lora.down/lora.up); B (rank 2) in PEFT format.
   lora_cases.safetensors: the latents of the kit's case b (DPM++ 20 steps, seed 0, 64x64) after
   pipe.load_lora_weights(FILE); pipe.fuse_lora(lora_scale=S), per format and S in (1.0, 0.5), and A + B as
   set_adapters(["a", "b"], adapter_weights=[0.7, 0.4]).
3. embedding_*.safetensors: textual inversion, diffusers' format ({token: [1, D]}) and A1111's (emb_params
   [2, D]); embedding_cases.safetensors: case b's latents with pipe.load_textual_inversion(FILE, token=T) and
   "T" in the prompt.
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


PROMPT = "portrait photo of a old warrior chief"


def make_pipe(kit):
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer
    folder = os.path.join(kit, "tiny-sd")
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))  # the slow tokenizer, as the kit
    pipe = StableDiffusionPipeline.from_pretrained(folder, tokenizer=tokenizer, safety_checker=None)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def latents(pipe, prompt=PROMPT):
    generator = torch.Generator("cpu").manual_seed(0)
    return pipe(prompt, num_inference_steps=20, guidance_scale=7.5, height=64, width=64, generator=generator,
                output_type="latent").images.contiguous()


def random_lora(kit, seed, rank, alpha, unet_targets, te_targets):
    """PEFT state dicts of a random LoRA (both matrices random, so it changes the images)."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    pipe = make_pipe(kit)
    torch.manual_seed(seed)
    pipe.unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights=False, target_modules=unet_targets))
    pipe.text_encoder.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights=False,
                                             target_modules=te_targets))
    unet = {k: v.detach().clone() * 0.5 for k, v in get_peft_model_state_dict(pipe.unet).items()}
    te = {k: v.detach().clone() * 0.5 for k, v in get_peft_model_state_dict(pipe.text_encoder).items()}
    return unet, te


def make_loras(kit, out):
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_kohya
    from safetensors.torch import save_file
    a_unet, a_te = random_lora(kit, 1, 4, 8, r".*(down_blocks\.0\.attentions\.0|mid_block\.attentions\.0)\..*"
                               r"(to_q|to_k|to_v|to_out\.0|proj_in)|.*down_blocks\.0\.resnets\.0\.conv1",
                               ["q_proj", "k_proj", "v_proj", "out_proj"])
    b_unet, b_te = random_lora(kit, 2, 2, 2, r".*up_blocks\.1\.attentions\.0\..*(to_k|to_v|ff\.net\.2)", ["q_proj", "k_proj", "v_proj", "out_proj"])
    files = {}
    # kohya / A1111: lora_unet_* / lora_te_*, lora_down / lora_up, alpha (8: scale 2 at rank 4)
    peft_prefixed = {**{"unet." + k: v for k, v in a_unet.items()}, **{"text_encoder." + k: v for k, v in a_te.items()}}
    kohya = convert_state_dict_to_kohya(peft_prefixed)
    kohya = {k.replace("lora_te1_", "lora_te_"): (torch.tensor(8.0) if k.endswith(".alpha") else v.contiguous())
             for k, v in kohya.items()}
    files["kohya"] = os.path.join(out, "lora_kohya.safetensors")
    save_file(kohya, files["kohya"])
    for name, unet, te in [("peft", a_unet, a_te), ("peft_b", b_unet, b_te)]:
        StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=unet, text_encoder_lora_layers=te,
                                                  weight_name=f"lora_{name}.safetensors")
        files[name] = os.path.join(out, f"lora_{name}.safetensors")
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=convert_state_dict_to_diffusers(a_unet),
                                              text_encoder_lora_layers=convert_state_dict_to_diffusers(a_te),
                                              weight_name="lora_diffusers.safetensors")
    files["diffusers"] = os.path.join(out, "lora_diffusers.safetensors")
    cases = {"base": latents(make_pipe(kit))}
    for fmt in ["kohya", "peft", "diffusers"]:
        for scale in [1.0, 0.5]:
            pipe = make_pipe(kit)
            pipe.load_lora_weights(files[fmt])
            pipe.fuse_lora(lora_scale=scale)
            cases[f"{fmt}_{scale}"] = latents(pipe)
    pipe = make_pipe(kit)
    pipe.load_lora_weights(files["kohya"], adapter_name="a")
    pipe.load_lora_weights(files["peft_b"], adapter_name="b")
    pipe.set_adapters(["a", "b"], adapter_weights=[0.7, 0.4])
    cases["kohya_0.7+peft_b_0.4"] = latents(pipe)
    save_file(cases, os.path.join(out, "lora_cases.safetensors"))
    for k, v in cases.items():
        print(k, float((v - cases["base"]).abs().max()))


def make_embeddings(kit, out):
    from safetensors.torch import save_file
    torch.manual_seed(3)
    one = torch.randn(1, 32) * 0.02
    two = torch.randn(2, 32) * 0.02
    save_file({"<kk-one>": one}, os.path.join(out, "embedding_diffusers.safetensors"))
    save_file({"emb_params": two}, os.path.join(out, "embedding_a1111.safetensors"))
    cases = {}
    pipe = make_pipe(kit)
    pipe.load_textual_inversion(os.path.join(out, "embedding_diffusers.safetensors"))
    cases["diffusers"] = latents(pipe, "portrait photo of a <kk-one> warrior chief")
    pipe = make_pipe(kit)
    pipe.load_textual_inversion(os.path.join(out, "embedding_a1111.safetensors"), token="<kk-two>")
    cases["a1111"] = latents(pipe, "portrait photo of a <kk-two> warrior chief")
    save_file(cases, os.path.join(out, "embedding_cases.safetensors"))


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
    make_loras(args.kit, args.out)
    make_embeddings(args.kit, args.out)


if __name__ == "__main__":
    main()
