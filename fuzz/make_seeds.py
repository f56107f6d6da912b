#!/usr/bin/env python3
"""Writes the small seed corpora in fuzz/corpus/<target>/ (checked in; rerun after changing this file).

Seeds are tiny on purpose: libFuzzer mutates them, so a few valid shapes of each format are worth more
than size. Nothing here comes from a real model.
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None, framed=False):
    """tensors: [(name, dtype, shape, raw bytes)]. framed=True writes the harness's "JSON NUL data" form."""
    header, offset, blob = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blob += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if framed:
        return text + b"\0" + blob
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + blob


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def seeds_safetensors():
    t = "safetensors"
    write(t, "empty_header", safetensors([]))
    write(t, "one_f32", safetensors([("w", "F32", [2, 2], f32(1, 2, 3, 4))]))
    write(t, "metadata", safetensors([("b", "F32", [1], f32(0.5))], {"format": "pt"}))
    write(t, "mixed_dtypes", safetensors([
        ("a.weight", "F16", [2], b"\x00\x3c\x00\xc0"),
        ("a.bias", "BF16", [2], b"\x80\x3f\x00\x00"),
        ("ids", "I64", [1, 2], struct.pack("<2q", 0, 76)),
        ("conv.weight", "F32", [1, 1, 1, 1], f32(-2)),
    ]))
    write(t, "zero_size", safetensors([("empty", "F32", [0, 3], b""), ("scalar", "F32", [], f32(7))]))
    write(t, "framed_one", safetensors([("w", "F32", [3], f32(1, 2, 3))], framed=True))
    write(t, "framed_two", safetensors([("x", "F16", [1, 2], b"\x00\x3c\x00\x3c"),
                                        ("y", "I64", [1], struct.pack("<q", 5))], {"k": "v"}, framed=True))
    write(t, "framed_nested_name", safetensors([("down_blocks.0.resnets.1.conv1.weight", "F32",
                                                 [1, 1, 2, 1], f32(0, 1))], framed=True))


def seeds_json_config():
    t = "json_config"
    configs = {
        "model_index": {
            "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.29.2",
            "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"], "safety_checker": [None, None],
            "feature_extractor": [None, None], "requires_safety_checker": False,
        },
        "unet": {
            "_class_name": "UNet2DConditionModel", "sample_size": 8, "in_channels": 4, "out_channels": 4,
            "block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 32,
            "attention_head_dim": [2, 4], "norm_num_groups": 32, "norm_eps": 1e-05,
            "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "use_linear_projection": False,
            "flip_sin_to_cos": True, "freq_shift": 0, "act_fn": "silu", "transformer_layers_per_block": 1,
        },
        "vae": {
            "_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4,
            "block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 32,
            "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
            "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "scaling_factor": 0.18215,
            "sample_size": 64, "act_fn": "silu",
        },
        "text_encoder": {
            "architectures": ["CLIPTextModel"], "hidden_size": 32, "intermediate_size": 37,
            "num_attention_heads": 4, "num_hidden_layers": 2, "max_position_embeddings": 77,
            "vocab_size": 1000, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
            "projection_dim": 32, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
        },
        "scheduler": {
            "_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
            "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "set_alpha_to_one": False,
            "skip_prk_steps": True, "steps_offset": 1, "prediction_type": "epsilon",
            "timestep_spacing": "leading", "trained_betas": None, "clip_sample": False,
        },
        "scheduler_euler": {
            "_class_name": "EulerDiscreteScheduler", "beta_schedule": "linear", "use_karras_sigmas": True,
            "timestep_spacing": "trailing", "interpolation_type": "linear", "trained_betas": [0.1, 0.2],
            "rescale_betas_zero_snr": False, "final_sigmas_type": "zero",
        },
        "tokenizer_config": {
            "model_max_length": 77, "do_lower_case": True, "bos_token": "<|startoftext|>",
            "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        },
    }
    for name, cfg in configs.items():
        write(t, name, json.dumps(cfg, indent=1))
    write(t, "odd_values", '{"a": 1e308, "b": -0.0, "c": 18446744073709551615, "d": -9223372036854775808,'
                           ' "e": "\\u00e9\\ud83d\\ude00", "f": [[1]], "g": {}, "h": null, "i": 2.5}')


def seeds_tokenizer():
    """First byte even: a prompt for the harness's synthetic tokenizer. Odd: NUL-separated tokenizer files."""
    t = "tokenizer"
    prompts = {
        "prompt_plain": "a photo of a cat",
        "prompt_specials": "<|startoftext|>the cat<|endoftext|> <|ENDOFTEXT|>",
        "prompt_punctuation": "A cat's toy, isn't it?! 1234.5 -- 'quoted' (weight:1.2) [x]",
        "prompt_unicode": "caf\u00e9 \u732b \U0001F431 \u0301e \uff21\uff22 \u00df",
        "prompt_whitespace": " \t\n  photo  \u3000of\u00a0cats  ",
    }
    for name, text in prompts.items():
        write(t, name, b"\0" + text.encode("utf-8"))
    write(t, "prompt_not_utf8", b"\0a photo \xff\xfe of \xc3\x28 cat \xed\xa0\x80")
    write(t, "prompt_long", b"\0" + b"photo of a cat, " * 40)

    symbols = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(symbols) + i for i, s in enumerate(symbols)})
    merges = ["#version: 0.2", "c a", "ca t</w>", "t h", "th e</w>"]
    for m in merges[1:]:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    config = {"model_max_length": 77, "do_lower_case": True,
              "added_tokens_decoder": {str(vocab["<|endoftext|>"]): {"content": "<|endoftext|>", "lstrip": False,
                                                                     "rstrip": False, "single_word": False}}}
    special = {"bos_token": "<|startoftext|>", "eos_token": {"content": "<|endoftext|>", "lstrip": False},
               "pad_token": "!", "unk_token": "<|endoftext|>"}
    parts = [json.dumps(vocab), "\n".join(merges) + "\n", json.dumps(config), json.dumps(special)]
    write(t, "files_full", b"\1" + b"\0".join(p.encode() for p in parts))
    write(t, "files_minimal", b"\1" + b"\0".join(p.encode() for p in parts[:2]))


if __name__ == "__main__":
    seeds_safetensors()
    seeds_json_config()
    seeds_tokenizer()
    # fuzz/corpus/weights/ is written by the harness itself (it knows the models' names and shapes):
    #   KAKUSAN_FUZZ_WRITE_SEEDS=fuzz/corpus/weights build-fuzz/fuzz/fuzz_weights -runs=0
    sys.exit(0)
