#!/usr/bin/env python3
"""Build small random-weight FoundationVision VAR / VQVAE fixtures with the UPSTREAM classes.

Usage:
    /usr/bin/python3 tools/foundation-var/make_fixtures.py --upstream /path/to/FoundationVision-VAR \
        --out tests/Policies.FoundationVar.Tests/Fixtures --seed 1

    /usr/bin/python3 tools/foundation-var/make_fixtures.py --bad-only \
        --out tests/Policies.FoundationVar.Tests/Fixtures     # only OUT/bad/ (no upstream needed)

Nothing from upstream is copied here: the model code is imported from --upstream.
See tools/foundation-var/README.md for what is written and why.
"""
import argparse
import io
import json
import math
import os
import pickle
import struct
import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

# --------------------------------------------------------------------------------------
# fixed configuration of the fixture models
# --------------------------------------------------------------------------------------
PATCH_NUMS = (1, 2, 3, 4, 5, 6)
VAE_KW = dict(vocab_size=64, z_channels=16, ch=32, share_quant_resi=4, v_patch_nums=PATCH_NUMS, test_mode=True)
VAR_KW = dict(num_classes=1000, depth=2, embed_dim=64, num_heads=4, mlp_ratio=4, drop_rate=0., attn_drop_rate=0.,
              drop_path_rate=0., norm_eps=1e-6, cond_drop_rate=0.1, attn_l2_norm=True, patch_nums=PATCH_NUMS,
              flash_if_available=False, fused_if_available=False)
VARIANTS = (('plain', False), ('shared', True))
CFG = 1.5
NUM_IMAGES = 4
IMG = 96
ENCODED_PROMPTS = ["207", "3", "500", ""]
RANDOM_PROMPTS = ["207", "0", "999", "", "1", "42"]
TARGET_LOGIT_STD = 2.5          # mean per-site std of the logits across the vocabulary
SCALE_MUL_OVER = math.log(150.)  # > log(100): exercises clamp_max(log 100) in SelfAttention
MIN_ARGMIN_MARGIN = 1e-5         # encoded test images must not sit near a codebook-distance tie


def install_shims(upstream):
    """Upstream var.py imports huggingface_hub (only for the VARHF mixin) and the repo-root `dist`."""
    hub = types.ModuleType('huggingface_hub')

    class PyTorchModelHubMixin:
        def __init_subclass__(cls, **kwargs):   # VARHF may pass hub metadata as class kwargs
            super().__init_subclass__()

    hub.PyTorchModelHubMixin = PyTorchModelHubMixin
    sys.modules['huggingface_hub'] = hub
    sys.dont_write_bytecode = True     # leave the upstream checkout untouched
    sys.path.insert(0, os.path.abspath(upstream))


# --------------------------------------------------------------------------------------
# deterministic initialisation
# --------------------------------------------------------------------------------------
def _normal_(t, std, g, mean=0.):
    t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * std + mean)


def init_vae(vae, g):
    modules = dict(vae.named_modules())
    done = set()
    with torch.no_grad():
        for name, p in vae.named_parameters():
            mname, _, pname = name.rpartition('.')
            m = modules[mname]
            if isinstance(m, nn.Conv2d):          # includes Phi (quant_resi) convs
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                if pname == 'weight':
                    std = 1. / math.sqrt(fan_in)
                    if mname == 'decoder.conv_out':
                        std *= 0.7                 # keep most decoded pixels inside clamp(-1, 1)
                    elif mname == 'quant_conv':
                        std *= 1.5                 # latent scale comparable to the N(0,1) codebook
                    _normal_(p, std, g)
                else:
                    _normal_(p, 0.05, g)
            elif isinstance(m, nn.GroupNorm):
                _normal_(p, 0.1, g, mean=1. if pname == 'weight' else 0.)
            elif isinstance(m, nn.Embedding):     # quantize.embedding: the codebook
                _normal_(p, 1., g)
            else:
                raise RuntimeError(f'uninitialised VAE parameter {name} ({type(m).__name__})')
            done.add(name)
    assert done == {n for n, _ in vae.named_parameters()}


def init_var(var, g):
    C, D, H = var.C, var.D, var.num_heads
    done = set()
    with torch.no_grad():
        for name, p in var.named_parameters():
            if name == 'word_embed.weight':
                _normal_(p, 1. / math.sqrt(var.Cvae), g)
            elif name == 'class_emb.weight':
                _normal_(p, 1., g)
            elif name in ('pos_start', 'pos_1LC', 'lvl_embed.weight'):
                _normal_(p, 0.5, g)
            elif name.endswith('attn.scale_mul_1H11'):
                _normal_(p, 0.25, g, mean=math.log(4.))
                bi = int(name.split('.')[1])
                p.view(-1)[bi % H] = SCALE_MUL_OVER     # one head per block above the clamp
            elif name.endswith('attn.q_bias') or name.endswith('attn.v_bias'):
                _normal_(p, 0.2, g)
            elif name.endswith('ada_gss'):
                _normal_(p, 0.3, g)
            elif name.endswith('.weight') and p.dim() == 2:   # all remaining Linear weights
                fan_in = p.shape[1]
                _normal_(p, 1. / math.sqrt(fan_in), g)
            elif name.endswith('.bias'):
                _normal_(p, 0.3 if ('ada_lin' in name) else 0.05, g)
            else:
                raise RuntimeError(f'uninitialised VAR parameter {name} {tuple(p.shape)}')
            done.add(name)
    assert done == {n for n, _ in var.named_parameters()}


# --------------------------------------------------------------------------------------
# images and token files
# --------------------------------------------------------------------------------------
def make_images(seed, attempt=0):
    rs = np.random.RandomState(seed * 7919 + 17 + 104729 * attempt)
    yy, xx = np.mgrid[0:IMG, 0:IMG].astype(np.float64) / (IMG - 1)
    imgs = []
    for i in range(NUM_IMAGES):
        a = rs.uniform(0, 2 * np.pi, size=3)
        f = rs.uniform(0.5, 2.0, size=3)
        img = np.stack([0.5 + 0.35 * np.sin(2 * np.pi * f[c] * (xx * np.cos(a[c]) + yy * np.sin(a[c])) + a[c])
                        for c in range(3)], axis=-1)
        for _ in range(3):   # filled discs and rectangles with random colours
            col = rs.uniform(0, 1, size=3)
            cx, cy, r = rs.uniform(0.15, 0.85), rs.uniform(0.15, 0.85), rs.uniform(0.08, 0.25)
            if rs.rand() < 0.5:
                m = (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2
            else:
                m = (abs(xx - cx) < r) & (abs(yy - cy) < r * rs.uniform(0.4, 1.0))
            img[m] = 0.6 * col + 0.4 * img[m]
        if i == 3:           # one image with stripes
            img[((xx * IMG).astype(int) // 6) % 2 == 0] *= 0.6
        img = img + rs.normal(0, 0.04, size=img.shape)
        imgs.append(np.clip(np.round(img * 255), 0, 255).astype(np.uint8))
    return imgs


def load_png(path):
    return np.asarray(Image.open(path).convert('RGB'), dtype=np.uint8)


def png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format='PNG')
    return buf.getvalue()


def to_uint8(x_B3HW):
    return ((x_B3HW + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def token_file(prompts, ms_idx_Bl):
    return {
        'schedule': [[pn, pn] for pn in PATCH_NUMS],
        'rows': [{'prompt': prompts[b], 'scales': [[int(v) for v in t[b].tolist()] for t in ms_idx_Bl]}
                 for b in range(len(prompts))],
    }


def rows_to_idx(tf):
    assert [tuple(s) for s in tf['schedule']] == [(pn, pn) for pn in PATCH_NUMS]
    return [torch.tensor([r['scales'][si] for r in tf['rows']], dtype=torch.long) for si in range(len(PATCH_NUMS))]


def labels_of(prompts, num_classes):
    return torch.tensor([num_classes if p == '' else int(p) for p in prompts], dtype=torch.long)


# --------------------------------------------------------------------------------------
# upstream computations
# --------------------------------------------------------------------------------------
@torch.no_grad()
def vae_encode(vae, imgs_u8):
    x = torch.from_numpy(np.stack(imgs_u8)).permute(0, 3, 1, 2).float().div(255).mul(2).sub(1).contiguous()
    return vae.img_to_idxBl(x)


@torch.no_grad()
def vae_decode(vae, ms_idx_Bl):
    B = ms_idx_Bl[0].shape[0]
    img = vae.idxBl_to_img([t.view(B, -1) for t in ms_idx_Bl], same_shape=True, last_one=True)
    return to_uint8(img)


@torch.no_grad()
def vae_decode_unclamped(vae, ms_idx_Bl):
    B = ms_idx_Bl[0].shape[0]
    ms_h = [vae.quantize.embedding(t).transpose(1, 2).view(B, vae.Cvae, pn, pn) for t, pn in zip(ms_idx_Bl, PATCH_NUMS)]
    return vae.decoder(vae.post_quant_conv(vae.quantize.embed_to_fhat(ms_h, all_to_max_scale=True, last_one=True)))


@torch.no_grad()
def var_logits(var, vae, labels, ms_idx_Bl):
    var.cond_drop_rate = 0.   # upstream forward applies condition dropout with torch.rand even in eval()
    x = vae.quantize.idxBl_to_var_input(ms_idx_Bl)
    return var(labels, x)     # B, L, V (float32)


@torch.no_grad()
def logprob_rows(var, vae, prompts, ms_idx_Bl):
    labels = labels_of(prompts, var.num_classes)
    tok_BL = torch.cat(ms_idx_Bl, dim=1)
    cond = var_logits(var, vae, labels, ms_idx_Bl)
    uncond = var_logits(var, vae, torch.full_like(labels, var.num_classes), ms_idx_Bl)
    S = len(var.patch_nums)
    guided = torch.empty_like(cond)
    for si, (bg, ed) in enumerate(var.begin_ends):
        ratio = si / var.num_stages_minus_1   # same float ops as autoregressive_infer_cfg
        t = CFG * ratio
        guided[:, bg:ed] = (1 + t) * cond[:, bg:ed] - t * uncond[:, bg:ed]
    out = {}
    for kind, lg in (('plain', cond), ('guided', guided)):
        lp = lg.log_softmax(-1).gather(-1, tok_BL.unsqueeze(-1)).squeeze(-1).double()   # float32 -> float64 sums
        out[kind] = [{'row': b, 'prompt': prompts[b],
                      'scales': [float(lp[b, bg:ed].sum()) for bg, ed in var.begin_ends]}
                     for b in range(len(prompts))]
    return out, cond, uncond


def logit_stats(cond, uncond):
    lsm = cond.log_softmax(-1)
    ent = -(lsm.exp() * lsm).sum(-1)
    site_std = cond.std(-1)
    return dict(site_std_mean=float(site_std.mean()), site_std_min=float(site_std.min()),
                site_std_max=float(site_std.max()),
                entropy_mean=float(ent.mean()), log_V=math.log(cond.shape[-1]),
                kl_to_uniform_mean=float((math.log(cond.shape[-1]) - ent).mean()),
                max_prob_mean=float(lsm.exp().max(-1).values.mean()),
                mean_abs_cond_minus_uncond=float((cond - uncond).abs().mean()))


@torch.no_grad()
def calibrate_head(var, vae, prompts, ms_idx_Bl):
    """Rescale head.weight so that the mean per-site logit std hits TARGET_LOGIT_STD (deterministic)."""
    labels = labels_of(prompts, var.num_classes)
    for _ in range(6):
        s = float(var_logits(var, vae, labels, ms_idx_Bl).std(-1).mean())
        var.head.weight.mul_(TARGET_LOGIT_STD / s)
    return float(var_logits(var, vae, labels, ms_idx_Bl).std(-1).mean())


@torch.no_grad()
def check_sampler_agrees(var, vae, label, seed):
    """Run upstream autoregressive_infer_cfg (KV cache, CFG ramp) and record the guided logits it samples from;
    the teacher-forcing guided logits on the sampled tokens must agree, and so must the decoded image."""
    import models.var as mvar
    rec = []
    orig = mvar.sample_with_top_k_top_p_

    def spy(logits_BlV, **kw):
        rec.append(logits_BlV.clone())
        idx = orig(logits_BlV, **kw)
        rec.append(idx[:, :, 0].clone())
        return idx
    mvar.sample_with_top_k_top_p_ = spy
    try:
        img01 = var.autoregressive_infer_cfg(B=2, label_B=label, g_seed=seed, cfg=CFG, top_k=0, top_p=0.0)
    finally:
        mvar.sample_with_top_k_top_p_ = orig
    logits_s = torch.cat(rec[0::2], dim=1)
    ms_idx = rec[1::2]
    labels = torch.full((2,), var.num_classes if label < 0 else label, dtype=torch.long)
    cond = var_logits(var, vae, labels, ms_idx)
    uncond = var_logits(var, vae, torch.full_like(labels, var.num_classes), ms_idx)
    guided = torch.empty_like(cond)
    for si, (bg, ed) in enumerate(var.begin_ends):
        t = CFG * (si / var.num_stages_minus_1)
        guided[:, bg:ed] = (1 + t) * cond[:, bg:ed] - t * uncond[:, bg:ed]
    d_logits = float((guided - logits_s).abs().max())
    img_tf = vae.idxBl_to_img(ms_idx, same_shape=True, last_one=True).add(1).mul(0.5)
    d_img = float((img_tf - img01).abs().max())
    return d_logits, d_img


def argmin_margins(vae, imgs_u8):
    """Smallest gap between the best and second-best codebook distance, per scale, relative to the magnitude of
    |z|^2 + |e|^2 that upstream's float32 addmm cancels: how far float noise is from flipping a token."""
    q = vae.quantize
    x = torch.from_numpy(np.stack(imgs_u8)).permute(0, 3, 1, 2).float().div(255).mul(2).sub(1)
    with torch.no_grad():
        f = vae.quant_conv(vae.encoder(x))
        B, C, H, W = f.shape
        f_rest = f.clone()
        SN = len(PATCH_NUMS)
        E = q.embedding.weight
        out, toks = [], []
        for si, pn in enumerate(PATCH_NUMS):
            z = F.interpolate(f_rest, size=(pn, pn), mode='area') if si != SN - 1 else f_rest
            z = z.permute(0, 2, 3, 1).reshape(-1, C).double()
            d = ((z[:, None, :] - E.double()[None]) ** 2).sum(-1)
            two = d.topk(2, dim=1, largest=False).values
            scale = (z ** 2).sum(1) + (E.double() ** 2).sum(1).max()   # magnitude of the float32 terms
            out.append(float(((two[:, 1] - two[:, 0]) / scale).min()))
            idx = d.argmin(1).view(B, pn, pn)
            toks.append(idx.reshape(B, pn * pn))
            h = q.embedding(idx).permute(0, 3, 1, 2)
            if si != SN - 1:
                h = F.interpolate(h, size=(H, W), mode='bicubic')
            f_rest.sub_(q.quant_resi[si / (SN - 1)](h))
        # with no near ties, the float64 nearest codes are upstream's float32 ones
        if min(out) >= MIN_ARGMIN_MARGIN:
            assert all(torch.equal(a, b) for a, b in zip(toks, vae_encode(vae, imgs_u8)))
        return out


# --------------------------------------------------------------------------------------
def build_models(seed, vae_sd=None, var_sds=None):
    from models.var import VAR
    from models.vqvae import VQVAE
    vae = VQVAE(**VAE_KW)
    if vae_sd is None:
        init_vae(vae, torch.Generator().manual_seed(seed * 1000 + 1))
    else:
        # upstream VQVAE.load_state_dict passes assign= (torch >= 2.1); use the base implementation
        torch.nn.Module.load_state_dict(vae, vae_sd, strict=True)
    vae.eval()
    vars_ = {}
    for i, (v, shared) in enumerate(VARIANTS):
        var = VAR(vae_local=vae, shared_aln=shared, **VAR_KW).eval()
        if var_sds is None:
            init_var(var, torch.Generator().manual_seed(seed * 1000 + 2 + i))
        else:
            var.load_state_dict(var_sds[v], strict=True)
        var.cond_drop_rate = 0.
        vars_[v] = var
    return vae, vars_


def compute_all(vae, vars_, imgs_u8, random_tf):
    enc_idx = vae_encode(vae, imgs_u8)
    enc_tf = token_file(ENCODED_PROMPTS, enc_idx)
    rnd_idx = rows_to_idx(random_tf)
    res = {'reference_vae': enc_tf,
           'decoded': vae_decode(vae, rnd_idx),
           'decoded_encoded': vae_decode(vae, enc_idx)}
    for v, var in vars_.items():
        r_rnd, _, _ = logprob_rows(var, vae, RANDOM_PROMPTS, rnd_idx)
        r_enc, _, _ = logprob_rows(var, vae, ENCODED_PROMPTS, enc_idx)
        res[f'reference_{v}'] = {'cfg': CFG, 'random': r_rnd, 'encoded': r_enc}
    return res


def _dumps(obj, ind=0):
    """JSON with dicts indented and lists of scalars / lists of lists of scalars kept on one line."""
    def flat(o):
        return isinstance(o, list) and all(not isinstance(e, (dict, list)) or
                                           (isinstance(e, list) and all(not isinstance(x, (dict, list)) for x in e))
                                           for e in o)
    pad = ' ' * ind
    if isinstance(obj, dict):
        if all(not isinstance(v, (dict, list)) or flat(v) for v in obj.values()):
            return '{' + ', '.join(f'{json.dumps(k)}: {json.dumps(v, separators=(",", ":"))}' for k, v in obj.items()) + '}'
        items = [f'{pad} {json.dumps(k)}: {_dumps(v, ind + 1)}' for k, v in obj.items()]
        return '{\n' + ',\n'.join(items) + '\n' + pad + '}'
    if isinstance(obj, list) and not flat(obj):
        return '[\n' + ',\n'.join(pad + ' ' + _dumps(v, ind + 1) for v in obj) + '\n' + pad + ']'
    return json.dumps(obj, separators=(',', ':'))


def write_json(path, obj):
    text = _dumps(obj)
    assert json.loads(text) == obj
    with open(path, 'w') as fp:
        fp.write(text + '\n')


def key_lines(sd):
    return [f'{k} {str(t.dtype).replace("torch.", "")} {list(t.shape)}' for k, t in sd.items()]


# --------------------------------------------------------------------------------------
# files a state-dict loader must refuse (OUT/bad/)
# --------------------------------------------------------------------------------------
BAD_README = """# Files a state-dict loader must refuse (made by `tools/foundation-var/make_fixtures.py --bad-only`, Debian torch 1.13)
`legacy.pth`: `torch.save({"w": torch.zeros(2)}, f, _use_new_zipfile_serialization=False)` (legacy non-zip format; storage key set to `0` so the bytes are reproducible).
`nested.pth`: a training-checkpoint-like nested dict `{"trainer": {"var_wo_ddp": {"w": zeros(2)}}, "epoch": 3}` (zip).
`whole_model.pth`: `torch.save(torch.nn.Linear(2, 2), f)` (a whole pickled module, zip). `not_a_checkpoint.pth`: 64 bytes of text.
`truncated.pth`: the first half of the bytes of a zip `torch.save({"w": torch.zeros(1000)})` (no central directory).
"""


def write_bad_files(out):
    """Tiny files that a loader of plain `torch.save(state_dict)` files must reject. Deterministic."""
    bad = os.path.join(out, 'bad')
    os.makedirs(bad, exist_ok=True)

    def save(name, obj, **kw):
        path = os.path.join(bad, name)
        torch.save(obj, path, **kw)
        return path

    # legacy format: five pickles (magic, protocol, sys info, object, storage keys), then raw storage bytes.
    # torch names each storage by its memory address; rename it to '0' so the file is reproducible.
    buf = io.BytesIO()
    torch.save({'w': torch.zeros(2)}, buf, _use_new_zipfile_serialization=False)
    raw = buf.getvalue()

    class _Any(dict):
        def __init__(self, *a, **k):
            super().__init__()

        def __setstate__(self, state):
            pass

    class _Skim(pickle.Unpickler):      # reads the pickles without building tensors
        def persistent_load(self, pid):
            return None

        def find_class(self, module, name):
            return _Any
    rd = io.BytesIO(raw)
    for _ in range(4):
        _Skim(rd).load()
    (key,) = _Skim(rd).load()
    pk = lambda k: b'X' + struct.pack('<I', len(k)) + k.encode()   # pickle protocol 2 BINUNICODE
    assert raw.count(pk(key)) == 2, raw
    raw = raw.replace(pk(key), pk('0'))
    with open(os.path.join(bad, 'legacy.pth'), 'wb') as fp:
        fp.write(raw)
    assert torch.equal(torch.load(os.path.join(bad, 'legacy.pth'))['w'], torch.zeros(2))
    save('nested.pth', {'trainer': {'var_wo_ddp': {'w': torch.zeros(2)}}, 'epoch': 3})
    with torch.random.fork_rng(devices=[]):   # seeded weights, caller's RNG state untouched
        torch.manual_seed(0)
        save('whole_model.pth', torch.nn.Linear(2, 2))
    text = ('hello, this is not a checkpoint. ' * 2)[:63] + '\n'
    assert len(text.encode()) == 64
    with open(os.path.join(bad, 'not_a_checkpoint.pth'), 'w') as fp:
        fp.write(text)
    buf = io.BytesIO()
    torch.save({'w': torch.zeros(1000)}, buf)
    full = buf.getvalue()
    with open(os.path.join(bad, 'truncated.pth'), 'wb') as fp:
        fp.write(full[:len(full) // 2])
    with open(os.path.join(bad, 'README.md'), 'w') as fp:
        fp.write(BAD_README)
    for f in sorted(os.listdir(bad)):
        print(f'  bad/{f:28s} {os.path.getsize(os.path.join(bad, f)):>8d} bytes')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--upstream', help='checkout of https://github.com/FoundationVision/VAR')
    ap.add_argument('--out', required=True)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--bad-files', action='store_true', help='also write OUT/bad/: files a loader must refuse')
    ap.add_argument('--bad-only', action='store_true', help='write only OUT/bad/ (leaves everything else untouched)')
    args = ap.parse_args()
    if args.bad_only:
        write_bad_files(args.out)
        return
    if not args.upstream:
        ap.error('--upstream is required (unless --bad-only)')

    install_shims(args.upstream)
    torch.set_num_threads(1)       # bit-reproducible float sums across machines
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    import models.basic_var as mbv
    print(f'[info] torch {torch.__version__}; attention path: '
          f'{"torch SDPA" if hasattr(F, "scaled_dot_product_attention") else "upstream slow_attn fallback"}; '
          f'flash_attn={mbv.flash_attn_func is not None} xformers={mbv.memory_efficient_attention is not None}')

    out = args.out
    os.makedirs(os.path.join(out, 'images'), exist_ok=True)
    os.makedirs(os.path.join(out, 'decoded'), exist_ok=True)
    os.makedirs(os.path.join(out, 'decoded_encoded'), exist_ok=True)

    # ---- models
    vae, vars_ = build_models(args.seed)

    # ---- images (written first, then read back: the references use exactly the PNG bytes).
    # Redraw (deterministically) while some codebook argmin of the encoded images is a near tie.
    for attempt in range(50):
        imgs = make_images(args.seed, attempt)
        margins = argmin_margins(vae, imgs)
        if min(margins) >= MIN_ARGMIN_MARGIN:
            break
        print(f'[info] image set {attempt} has an argmin margin {min(margins):.1e} < {MIN_ARGMIN_MARGIN:g}; redrawing')
    else:
        raise RuntimeError('could not draw test images without near-tie codebook distances')
    for i, im in enumerate(imgs):
        with open(os.path.join(out, 'images', f'{i:03d}.png'), 'wb') as fp:
            fp.write(png_bytes(im))
    imgs_u8 = [load_png(os.path.join(out, 'images', f'{i:03d}.png')) for i in range(NUM_IMAGES)]

    # ---- random token file
    g_tok = torch.Generator().manual_seed(args.seed * 1000 + 99)
    V = VAE_KW['vocab_size']
    rnd_idx = [torch.randint(0, V, (len(RANDOM_PROMPTS), pn * pn), generator=g_tok) for pn in PATCH_NUMS]
    random_tf = token_file(RANDOM_PROMPTS, rnd_idx)
    write_json(os.path.join(out, 'random_tokens.json'), random_tf)

    # ---- calibrate VAR heads on random + encoded tokens, then report statistics
    enc_idx = vae_encode(vae, imgs_u8)
    calib_prompts = RANDOM_PROMPTS + ENCODED_PROMPTS
    calib_idx = [torch.cat([a, b]) for a, b in zip(rnd_idx, enc_idx)]
    stats = {}
    for v, var in vars_.items():
        s = calibrate_head(var, vae, calib_prompts, calib_idx)
        _, cond, uncond = logprob_rows(var, vae, calib_prompts, calib_idx)
        st = logit_stats(cond, uncond)
        stats[v] = st
        print(f'[{v}] calibrated head: mean per-site logit std {s:.3f}; '
              f'min/max {st["site_std_min"]:.3f}/{st["site_std_max"]:.3f}; entropy {st["entropy_mean"]:.3f} '
              f'of log V={st["log_V"]:.3f} (KL to uniform {st["kl_to_uniform_mean"]:.3f} nats, '
              f'mean max prob {st["max_prob_mean"]:.3f}); mean |cond-uncond| logits {st["mean_abs_cond_minus_uncond"]:.3f}')
        assert 1.5 <= st['site_std_mean'] <= 4.0, st
        assert st['mean_abs_cond_minus_uncond'] > 0.3, st
        for bi, b in enumerate(var.blocks):
            sm = b.attn.scale_mul_1H11.view(-1)
            assert int((sm > b.attn.max_scale_mul).sum()) == 1
        d_logits, d_img = check_sampler_agrees(var, vae, label=207, seed=args.seed)
        print(f'[{v}] upstream sampler vs teacher-forcing guided logits: max |diff| {d_logits:.2e}; '
              f'decoded image max |diff| {d_img:.2e}')
        assert d_logits < 1e-3 and d_img < 1e-4, (d_logits, d_img)
        d_logits, _ = check_sampler_agrees(var, vae, label=-1, seed=args.seed + 1)
        assert d_logits < 1e-3, d_logits

    # ---- save weights exactly like the official files: torch.save(module.state_dict())
    torch.save(vae.state_dict(), os.path.join(out, 'vae.pth'))
    for v, var in vars_.items():
        torch.save(var.state_dict(), os.path.join(out, f'var_{v}.pth'))

    # ---- references
    res = compute_all(vae, vars_, imgs_u8, random_tf)
    write_json(os.path.join(out, 'reference_vae.json'), res['reference_vae'])
    for v in vars_:
        write_json(os.path.join(out, f'reference_{v}.json'), res[f'reference_{v}'])
    for folder in ('decoded', 'decoded_encoded'):
        for i, im in enumerate(res[folder]):
            with open(os.path.join(out, folder, f'{i:03d}.png'), 'wb') as fp:
                fp.write(png_bytes(im))

    # ---- key list
    lines = []
    for fname in ('vae.pth', 'var_plain.pth', 'var_shared.pth'):
        sd = torch.load(os.path.join(out, fname), map_location='cpu')
        n = sum(t.numel() for t in sd.values())
        lines.append(f'# {fname}: {len(sd)} tensors, {n} elements ({type(sd).__name__})')
        lines += key_lines(sd)
    with open(os.path.join(out, 'keys.txt'), 'w') as fp:
        fp.write('\n'.join(lines) + '\n')

    # ---- self-check: fresh upstream modules from the saved files reproduce every output bit for bit
    torch.manual_seed(args.seed + 4242)
    vae_sd = torch.load(os.path.join(out, 'vae.pth'), map_location='cpu')
    var_sds = {v: torch.load(os.path.join(out, f'var_{v}.pth'), map_location='cpu') for v, _ in VARIANTS}
    vae2, vars2 = build_models(args.seed, vae_sd=vae_sd, var_sds=var_sds)
    imgs2 = [load_png(os.path.join(out, 'images', f'{i:03d}.png')) for i in range(NUM_IMAGES)]
    with open(os.path.join(out, 'random_tokens.json')) as fp:
        random_tf2 = json.load(fp)
    res2 = compute_all(vae2, vars2, imgs2, random_tf2)
    for k in res:
        if k.startswith('decoded'):
            disk = np.stack([load_png(os.path.join(out, k, f'{i:03d}.png')) for i in range(len(res[k]))])
            assert np.array_equal(disk, res2[k]), k
        else:
            with open(os.path.join(out, f'{k}.json')) as fp:
                assert json.load(fp) == res2[k], k
    print('[self-check] reloaded .pth files reproduce tokens, decoded PNGs and log-prob sums exactly')

    if args.bad_files:
        write_bad_files(out)

    # ---- summary
    print('\n==== summary ====')
    print(f'VAE params: {sum(p.numel() for p in vae.parameters())}')
    for v, var in vars_.items():
        print(f'VAR {v} params: {sum(p.numel() for p in var.parameters())}')
    for root, _, files in sorted(os.walk(out)):
        for f in sorted(files):
            p = os.path.join(root, f)
            print(f'  {os.path.relpath(p, out):32s} {os.path.getsize(p):>10d} bytes')
    un = vae_decode_unclamped(vae, rnd_idx)
    ue = vae_decode_unclamped(vae, enc_idx)
    for name, u in (('random', un), ('encoded', ue)):
        print(f'decoded ({name} tokens) pre-clamp std {float(u.std()):.3f}, '
              f'fraction inside (-1,1): {float((u.abs() < 1).float().mean()):.3f}, '
              f'grey-level std {float(torch.from_numpy(res["decoded" if name == "random" else "decoded_encoded"]).float().std()):.1f}')
    print('encoded tokens: unique per scale', [len(set(t.flatten().tolist())) for t in enc_idx])
    print('encoded argmin relative margins (min per scale):', ['%.2e' % m for m in argmin_margins(vae, imgs_u8)])
    ticks = vae.quantize.quant_resi.ticks
    for S in (6, 10):
        idx = [int(np.argmin(np.abs(ticks - si / (S - 1)))) for si in range(S)]
        print(f'phi index per scale for S={S}: {idx}  (ticks {ticks.tolist()})')
    for v, st in stats.items():
        print(f'{v}: ' + ', '.join(f'{k}={val:.3f}' for k, val in st.items()))
    for v in vars_:
        r = res[f'reference_{v}']
        print(f'reference_{v} random row 0 plain: {[round(x, 3) for x in r["random"]["plain"][0]["scales"]]}')
        print(f'reference_{v} random row 0 guided: {[round(x, 3) for x in r["random"]["guided"][0]["scales"]]}')


if __name__ == '__main__':
    main()
