# Goldens for A1111 prompt syntax as diffusers' community pipeline lpw_stable_diffusion computes it: the parsed
# (text, weight) runs, the padded token ids and per-token weights, and the weighted prompt embeddings of the
# kit's tiny text encoder.
#
# The kit's random text encoder ends in a LayerNorm with zero bias, so the mean of its hidden states is rounding
# noise (~1e-8) and lpw's mean-preserving rescale (previous_mean / current_mean) would be a ratio of noise. The
# embeddings here use the kit's encoder with a random final_layer_norm.bias instead (as trained CLIP has one);
# that tensor is saved beside the goldens so the test can build the same encoder.
#
# Versions: diffusers 0.29.2, transformers 4.40.2, torch (CPU) -- /work/venv. The community file is not in
# diffusers' wheel: pass its path, taken from diffusers' GitHub source at tag v0.29.2
# (git show v0.29.2:examples/community/lpw_stable_diffusion.py > lpw_stable_diffusion.py).
#
#   python make_lpw_golden.py LPW_PY TINY_SD_DIR OUT_DIR
import importlib.util
import json
import sys
import types

import torch
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

lpw_path, tiny, out = sys.argv[1], sys.argv[2], sys.argv[3]
spec = importlib.util.spec_from_file_location("lpw", lpw_path)
lpw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lpw)

PARSE_CASES = [
    "normal text",
    "an (important) word",
    "(unbalanced",
    "\\(literal\\]",
    "(unnecessary)(parens)",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    "[[faint]] and ((strong)) and (exact:0.25) and (neg:-1)",
    "colon: not a weight, (ratio:+2.)",
    "caf\u00e9 (na\u00efve:1.5) \\\\ backslash",
    "a cat BREAK a dog",
    "]) stray closers ([",
    "",
]
parsed = [{"prompt": p, "runs": lpw.parse_prompt_attention(p)} for p in PARSE_CASES]

long_prompt = ", ".join(["a (very:1.2) detailed [painting] of a lighthouse %d" % i for i in range(14)])
EMBED_CASES = {
    "weighted": (["a (red:1.3) cube on a [blue] table"], [""]),
    "long": ([long_prompt], ["blurry, (ugly:1.2)"]),
    "batch": (["a (cat)", long_prompt], ["", "lowres"]),
    "break": (["a cat BREAK a dog"], ["((bad))"]),
}

tokenizer = CLIPTokenizer.from_pretrained(tiny, subfolder="tokenizer")
text_encoder = CLIPTextModel.from_pretrained(tiny, subfolder="text_encoder").eval()
generator = torch.Generator().manual_seed(20)
final_bias = (torch.randn(text_encoder.config.hidden_size, generator=generator) * 0.5).contiguous()
with torch.no_grad():
    text_encoder.text_model.final_layer_norm.bias.copy_(final_bias)
pipe = types.SimpleNamespace(tokenizer=tokenizer, text_encoder=text_encoder, device=torch.device("cpu"))

# Record what get_weighted_text_embeddings pads (its locals are not returned).
padded = []
original_pad = lpw.pad_tokens_and_weights


def recording_pad(*args, **kwargs):
    tokens, weights = original_pad(*args, **kwargs)
    padded.append({"ids": [list(t) for t in tokens], "weights": [list(w) for w in weights]})
    return tokens, weights


lpw.pad_tokens_and_weights = recording_pad
tensors = {"text_model.final_layer_norm.bias": final_bias}
token_cases = {}
with torch.no_grad():
    for name, (prompts, negatives) in EMBED_CASES.items():
        padded.clear()
        cond, uncond = lpw.get_weighted_text_embeddings(pipe, prompts, negatives, max_embeddings_multiples=3)
        tensors[name + ".cond"] = cond.contiguous()
        tensors[name + ".uncond"] = uncond.contiguous()
        token_cases[name] = {"prompts": prompts, "negative_prompts": negatives, "cond": padded[0], "uncond": padded[1]}

with open(f"{out}/lpw_parse.json", "w") as f:
    json.dump(parsed, f, indent=1, ensure_ascii=False)
with open(f"{out}/lpw_tokens.json", "w") as f:
    json.dump(token_cases, f, ensure_ascii=False)
save_file(tensors, f"{out}/lpw_embeds.safetensors")
