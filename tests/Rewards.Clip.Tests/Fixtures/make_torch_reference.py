"""Reference features for tests/Rewards.Clip.Tests/TorchReferenceTests.cs.

Builds tiny random CLIP models in the Hugging Face and OpenCLIP key layouts, writes them as safetensors, and computes
image and text features with PyTorch's own building blocks (nn.TransformerEncoderLayer with norm_first=True, which is
exactly CLIP's pre-norm residual block, nn.MultiheadAttention inside it, F.conv2d, F.layer_norm), independently of
NextFlowRL's TorchSharp modules. Run with Debian 12's python3-torch (1.13):

    /usr/bin/python3 tests/Rewards.Clip.Tests/Fixtures/make_torch_reference.py
"""
import json, os, struct
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch-reference")
W, HEADS, MLP, LAYERS, VOCAB, CTX, IMG, PATCH, EMBED = 16, 2, 32, 2, 80, 8, 8, 4, 12
torch.manual_seed(20261128)


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for k in sorted(tensors):
        b = tensors[k].detach().float().contiguous().numpy().tobytes()
        header[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def r(*shape, scale=0.3):
    return torch.randn(*shape) * scale


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def block(ln1w, ln1b, inw, inb, outw, outb, ln2w, ln2b, fc1w, fc1b, fc2w, fc2b, act):
    layer = nn.TransformerEncoderLayer(W, HEADS, MLP, dropout=0.0, activation=act, batch_first=True, norm_first=True, layer_norm_eps=1e-5)
    with torch.no_grad():
        layer.norm1.weight.copy_(ln1w); layer.norm1.bias.copy_(ln1b)
        layer.self_attn.in_proj_weight.copy_(inw); layer.self_attn.in_proj_bias.copy_(inb)
        layer.self_attn.out_proj.weight.copy_(outw); layer.self_attn.out_proj.bias.copy_(outb)
        layer.norm2.weight.copy_(ln2w); layer.norm2.bias.copy_(ln2b)
        layer.linear1.weight.copy_(fc1w); layer.linear1.bias.copy_(fc1b)
        layer.linear2.weight.copy_(fc2w); layer.linear2.bias.copy_(fc2b)
    return layer.eval()


def ln_params():
    return 1 + r(W, scale=0.1), r(W, scale=0.1)


pixels = torch.randn(2, 3, IMG, IMG)
ids = torch.tensor([[VOCAB - 2, 5, 17, VOCAB - 1, 0, 0, 0, 0], [VOCAB - 2, 9, 3, 44, 60, VOCAB - 1, 0, 0]])
ends = torch.tensor([3, 5])
causal = torch.full((CTX, CTX), float("-inf")).triu(1)
grid = IMG // PATCH
expected = {"pixels": pixels.flatten().tolist(), "ids": ids.flatten().tolist(), "ends": ends.tolist()}

# ---------------- Hugging Face layout, quick_gelu ----------------
t = {}
t["text_model.embeddings.token_embedding.weight"] = r(VOCAB, W)
t["text_model.embeddings.position_embedding.weight"] = r(CTX, W)
t["vision_model.embeddings.class_embedding"] = r(W)
t["vision_model.embeddings.patch_embedding.weight"] = r(W, 3, PATCH, PATCH)
t["vision_model.embeddings.position_embedding.weight"] = r(grid * grid + 1, W)
for tower in ("text_model", "vision_model"):
    for i in range(LAYERS):
        p = f"{tower}.encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t[p + f"self_attn.{n}.weight"] = r(W, W)
            t[p + f"self_attn.{n}.bias"] = r(W, scale=0.1)
        t[p + "layer_norm1.weight"], t[p + "layer_norm1.bias"] = ln_params()
        t[p + "layer_norm2.weight"], t[p + "layer_norm2.bias"] = ln_params()
        t[p + "mlp.fc1.weight"], t[p + "mlp.fc1.bias"] = r(MLP, W), r(MLP, scale=0.1)
        t[p + "mlp.fc2.weight"], t[p + "mlp.fc2.bias"] = r(W, MLP), r(W, scale=0.1)
t["text_model.final_layer_norm.weight"], t["text_model.final_layer_norm.bias"] = ln_params()
t["vision_model.pre_layrnorm.weight"], t["vision_model.pre_layrnorm.bias"] = ln_params()
t["vision_model.post_layernorm.weight"], t["vision_model.post_layernorm.bias"] = ln_params()
t["visual_projection.weight"] = r(EMBED, W)
t["text_projection.weight"] = r(EMBED, W)
t["logit_scale"] = torch.tensor(2.6592)
save_safetensors(os.path.join(OUT, "hf.safetensors"), t)
json.dump({"projection_dim": EMBED,
           "text_config": {"hidden_size": W, "intermediate_size": MLP, "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
                           "max_position_embeddings": CTX, "vocab_size": VOCAB, "hidden_act": "quick_gelu"},
           "vision_config": {"hidden_size": W, "intermediate_size": MLP, "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
                             "image_size": IMG, "patch_size": PATCH, "hidden_act": "quick_gelu"}},
          open(os.path.join(OUT, "hf-config.json"), "w"), indent=1)


def hf_layers(tower):
    out = []
    for i in range(LAYERS):
        p = f"{tower}.encoder.layers.{i}."
        inw = torch.cat([t[p + f"self_attn.{n}.weight"] for n in ("q_proj", "k_proj", "v_proj")])
        inb = torch.cat([t[p + f"self_attn.{n}.bias"] for n in ("q_proj", "k_proj", "v_proj")])
        out.append(block(t[p + "layer_norm1.weight"], t[p + "layer_norm1.bias"], inw, inb, t[p + "self_attn.out_proj.weight"],
                         t[p + "self_attn.out_proj.bias"], t[p + "layer_norm2.weight"], t[p + "layer_norm2.bias"],
                         t[p + "mlp.fc1.weight"], t[p + "mlp.fc1.bias"], t[p + "mlp.fc2.weight"], t[p + "mlp.fc2.bias"], quick_gelu))
    return out


with torch.no_grad():
    x = t["text_model.embeddings.token_embedding.weight"][ids] + t["text_model.embeddings.position_embedding.weight"][:CTX]
    for layer in hf_layers("text_model"):
        x = layer(x, src_mask=causal)
    x = F.layer_norm(x, (W,), t["text_model.final_layer_norm.weight"], t["text_model.final_layer_norm.bias"], 1e-5)
    text = x[torch.arange(2), ends] @ t["text_projection.weight"].T
    v = F.conv2d(pixels, t["vision_model.embeddings.patch_embedding.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    v = torch.cat([t["vision_model.embeddings.class_embedding"].expand(2, 1, W), v], 1) + t["vision_model.embeddings.position_embedding.weight"]
    v = F.layer_norm(v, (W,), t["vision_model.pre_layrnorm.weight"], t["vision_model.pre_layrnorm.bias"], 1e-5)
    for layer in hf_layers("vision_model"):
        v = layer(v)
    v = F.layer_norm(v[:, 0], (W,), t["vision_model.post_layernorm.weight"], t["vision_model.post_layernorm.bias"], 1e-5)
    image = v @ t["visual_projection.weight"].T
expected["hf"] = {"image": image.flatten().tolist(), "text": text.flatten().tolist()}

# ---------------- OpenCLIP layout, exact gelu ----------------
o = {}
o["token_embedding.weight"] = r(VOCAB, W)
o["positional_embedding"] = r(CTX, W)
o["visual.conv1.weight"] = r(W, 3, PATCH, PATCH)
o["visual.class_embedding"] = r(W)
o["visual.positional_embedding"] = r(grid * grid + 1, W)
for prefix in ("transformer", "visual.transformer"):
    for i in range(LAYERS):
        p = f"{prefix}.resblocks.{i}."
        o[p + "ln_1.weight"], o[p + "ln_1.bias"] = ln_params()
        o[p + "attn.in_proj_weight"], o[p + "attn.in_proj_bias"] = r(3 * W, W), r(3 * W, scale=0.1)
        o[p + "attn.out_proj.weight"], o[p + "attn.out_proj.bias"] = r(W, W), r(W, scale=0.1)
        o[p + "ln_2.weight"], o[p + "ln_2.bias"] = ln_params()
        o[p + "mlp.c_fc.weight"], o[p + "mlp.c_fc.bias"] = r(MLP, W), r(MLP, scale=0.1)
        o[p + "mlp.c_proj.weight"], o[p + "mlp.c_proj.bias"] = r(W, MLP), r(W, scale=0.1)
o["ln_final.weight"], o["ln_final.bias"] = ln_params()
o["visual.ln_pre.weight"], o["visual.ln_pre.bias"] = ln_params()
o["visual.ln_post.weight"], o["visual.ln_post.bias"] = ln_params()
o["visual.proj"] = r(W, EMBED)
o["text_projection"] = r(W, EMBED)
o["logit_scale"] = torch.tensor(4.6052)
save_safetensors(os.path.join(OUT, "oc.safetensors"), o)
json.dump({"model_cfg": {"embed_dim": EMBED,
                         "vision_cfg": {"image_size": IMG, "layers": LAYERS, "width": W, "head_width": W // HEADS, "patch_size": PATCH, "mlp_ratio": MLP / W},
                         "text_cfg": {"context_length": CTX, "vocab_size": VOCAB, "width": W, "heads": HEADS, "layers": LAYERS, "mlp_ratio": MLP / W}}},
          open(os.path.join(OUT, "oc-config.json"), "w"), indent=1)


def oc_layers(prefix):
    out = []
    for i in range(LAYERS):
        p = f"{prefix}.resblocks.{i}."
        out.append(block(o[p + "ln_1.weight"], o[p + "ln_1.bias"], o[p + "attn.in_proj_weight"], o[p + "attn.in_proj_bias"],
                         o[p + "attn.out_proj.weight"], o[p + "attn.out_proj.bias"], o[p + "ln_2.weight"], o[p + "ln_2.bias"],
                         o[p + "mlp.c_fc.weight"], o[p + "mlp.c_fc.bias"], o[p + "mlp.c_proj.weight"], o[p + "mlp.c_proj.bias"], "gelu"))
    return out


with torch.no_grad():
    x = o["token_embedding.weight"][ids] + o["positional_embedding"]
    for layer in oc_layers("transformer"):
        x = layer(x, src_mask=causal)
    x = F.layer_norm(x, (W,), o["ln_final.weight"], o["ln_final.bias"], 1e-5)
    text = x[torch.arange(2), ends] @ o["text_projection"]
    v = F.conv2d(pixels, o["visual.conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    v = torch.cat([o["visual.class_embedding"].expand(2, 1, W), v], 1) + o["visual.positional_embedding"]
    v = F.layer_norm(v, (W,), o["visual.ln_pre.weight"], o["visual.ln_pre.bias"], 1e-5)
    for layer in oc_layers("visual.transformer"):
        v = layer(v)
    image = F.layer_norm(v[:, 0], (W,), o["visual.ln_post.weight"], o["visual.ln_post.bias"], 1e-5) @ o["visual.proj"]
expected["oc"] = {"image": image.flatten().tolist(), "text": text.flatten().tolist()}
expected["generator"] = f"make_torch_reference.py with PyTorch {torch.__version__}"
json.dump(expected, open(os.path.join(OUT, "expected.json"), "w"))
print("written", OUT, torch.__version__)
