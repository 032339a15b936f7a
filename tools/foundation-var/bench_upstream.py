#!/usr/bin/env python3
"""Time the UPSTREAM FoundationVision VAR sampler on CPU, or write random official-shape weight files.

Timing (prints one JSON line on stdout, everything else goes to stderr):
    /usr/bin/python3 tools/foundation-var/bench_upstream.py --upstream /path/to/FoundationVision-VAR \
        --var var_d16.pth --vae vae_ch160v4096z32.pth --batch 1 --threads 2 --repeats 3 \
        --cfg 1.5 --top-k 900 --top-p 0.96 --labels 207,0,999 [--seed 0]

Random official-shape files (prints one JSON line on stdout):
    /usr/bin/python3 tools/foundation-var/bench_upstream.py --upstream /path/to/FoundationVision-VAR \
        --make-random 16 --out /tmp/d16 [--seed 0] [--vae-ch 160] [--shared-aln]

Nothing from upstream is copied here: the model code is imported from --upstream.
See tools/foundation-var/README.md ("bench_upstream.py") for details.
"""
import argparse
import contextlib
import json
import math
import os
import re
import resource
import statistics
import sys
import time
import types

import torch
import torch.nn as nn

OFFICIAL_PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)


def install_shims(upstream):
    """Same shims as make_fixtures.py: stub huggingface_hub (only the VARHF mixin needs it), upstream root on sys.path."""
    hub = types.ModuleType('huggingface_hub')

    class PyTorchModelHubMixin:
        def __init_subclass__(cls, **kwargs):   # VARHF may pass hub metadata as class kwargs
            super().__init_subclass__()

    hub.PyTorchModelHubMixin = PyTorchModelHubMixin
    sys.modules['huggingface_hub'] = hub
    sys.dont_write_bytecode = True     # leave the upstream checkout untouched
    sys.path.insert(0, os.path.abspath(upstream))


@contextlib.contextmanager
def no_default_init(classes):
    """Temporarily make reset_parameters a no-op (like upstream build_vae_var, but restored afterwards)."""
    saved = [(c, c.__dict__.get('reset_parameters')) for c in classes]
    for c in classes:
        setattr(c, 'reset_parameters', lambda self: None)
    try:
        yield
    finally:
        for c, f in saved:
            if f is None:
                delattr(c, 'reset_parameters')
            else:
                setattr(c, 'reset_parameters', f)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.   # Linux: KiB


def loaded_blas():
    """Real paths of the BLAS/LAPACK libraries mapped into this process (Debian's torch uses whatever
    libblas.so.3 resolves to: netlib reference BLAS unless OpenBLAS/BLIS is installed or on LD_LIBRARY_PATH)."""
    libs = set()
    try:
        with open('/proc/self/maps') as fp:
            for line in fp:
                path = line.split()[-1]
                name = os.path.basename(path)
                if path.startswith('/') and re.search(r'blas|lapack|mkl|blis', name, re.I):
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(libs)


def load_sd(path):
    sd = torch.load(path, map_location='cpu')
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise SystemExit(f'{path}: not a plain state dict (torch.save(module.state_dict()))')
    return sd


# --------------------------------------------------------------------------------------
# architecture from state dicts
# --------------------------------------------------------------------------------------
def patch_nums_from_lvl(lvl_1L):
    lv = lvl_1L.reshape(-1).tolist()
    counts = [lv.count(i) for i in range(max(lv) + 1)]
    pns = []
    for n in counts:
        pn = math.isqrt(n)
        if pn * pn != n:
            raise SystemExit(f'lvl_1L: level has {n} tokens, not a square')
        pns.append(pn)
    return tuple(pns)


def vae_kwargs_from_sd(sd, patch_nums):
    V, Cvae = sd['quantize.embedding.weight'].shape
    kw = dict(vocab_size=int(V), z_channels=int(Cvae), ch=int(sd['encoder.conv_in.weight'].shape[0]),
              quant_conv_ks=int(sd['quant_conv.weight'].shape[-1]), v_patch_nums=patch_nums, test_mode=True)
    ls = {int(m.group(1)) for k in sd for m in [re.match(r'quantize\.quant_resi\.qresi_ls\.(\d+)\.weight$', k)] if m}
    non = {int(m.group(1)) for k in sd for m in [re.match(r'quantize\.quant_resi\.(\d+)\.weight$', k)] if m}
    if ls:                                               # partially shared (official: 4)
        kw['share_quant_resi'] = len(ls)
    elif 'quantize.quant_resi.qresi.weight' in sd:       # fully shared
        kw['share_quant_resi'] = 1
    elif non:                                            # non-shared
        kw['share_quant_resi'] = 0
        kw['default_qresi_counts'] = len(non)
    else:
        raise SystemExit('VAE state dict: no quantize.quant_resi convs found')
    return kw


def var_kwargs_from_sd(sd):
    depth = len({int(m.group(1)) for k in sd for m in [re.match(r'blocks\.(\d+)\.', k)] if m})
    C = int(sd['word_embed.weight'].shape[0])
    return dict(
        num_classes=int(sd['class_emb.weight'].shape[0]) - 1, depth=depth, embed_dim=C,
        num_heads=int(sd['blocks.0.attn.scale_mul_1H11'].shape[1]),
        mlp_ratio=sd['blocks.0.ffn.fc1.weight'].shape[0] / C,
        drop_rate=0., attn_drop_rate=0., drop_path_rate=0., norm_eps=1e-6,
        shared_aln='shared_ada_lin.1.weight' in sd, cond_drop_rate=0.1, attn_l2_norm=True,
        patch_nums=patch_nums_from_lvl(sd['lvl_1L']),
        flash_if_available=False, fused_if_available=False)


# --------------------------------------------------------------------------------------
def bench(args):
    from models.var import VAR
    from models.vqvae import VQVAE
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    var_sd = load_sd(args.var)
    var_kw = var_kwargs_from_sd(var_sd)
    vae_sd = load_sd(args.vae)
    vae_kw = vae_kwargs_from_sd(vae_sd, var_kw['patch_nums'])
    print(f'[arch] VQVAE{vae_kw}\n[arch] VAR{var_kw}', flush=True)
    # every parameter is overwritten by the strict loads below: skip the default init
    with no_default_init((nn.Linear, nn.LayerNorm, nn.Conv2d, nn.GroupNorm, nn.Embedding)):
        vae = VQVAE(**vae_kw)
        torch.nn.Module.load_state_dict(vae, vae_sd, strict=True)   # VQVAE.load_state_dict passes assign= (torch >= 2.1)
        del vae_sd
        vae.eval()
        var = VAR(vae_local=vae, **var_kw)
        var.load_state_dict(var_sd, strict=True)
        del var_sd
    var.eval()
    load_s = time.perf_counter() - t0

    nc = var.num_classes
    labels = [nc if l < 0 else l for l in args.labels]
    if any(l > nc for l in labels):
        raise SystemExit(f'labels must be in [0, {nc}] ({nc} = unconditional, negative also means unconditional)')
    label_B = torch.tensor([labels[i % len(labels)] for i in range(args.batch)], dtype=torch.long)

    def call(seed):
        t = time.perf_counter()
        with torch.inference_mode():
            img = var.autoregressive_infer_cfg(B=args.batch, label_B=label_B, g_seed=seed, cfg=args.cfg,
                                               top_k=args.top_k, top_p=args.top_p, more_smooth=False)
        dt = time.perf_counter() - t
        assert img.shape[0] == args.batch and torch.isfinite(img).all()
        return dt, tuple(img.shape)

    warm_s, shape = call(args.seed)
    print(f'[warm-up] {warm_s:.3f} s, output {shape}', flush=True)
    times = []
    for i in range(args.repeats):
        dt, _ = call(args.seed + i)
        times.append(dt)
        print(f'[call {i}] {dt:.3f} s', flush=True)
    med = statistics.median(times)
    return {
        'images_per_s': args.batch / med,
        'seconds_per_call_min': min(times),
        'seconds_per_call_median': med,
        'batch': args.batch, 'threads': args.threads, 'repeats': args.repeats,
        'torch': torch.__version__,
        'blas': loaded_blas(),
        'load_s': load_s,
        'peak_rss_mb': peak_rss_mb(),
        'warmup_s': warm_s,
        'seconds_per_call': times,
        'output_shape': list(shape),
        'arch': {'depth': var_kw['depth'], 'embed_dim': var_kw['embed_dim'], 'num_heads': var_kw['num_heads'],
                 'mlp_ratio': var_kw['mlp_ratio'], 'shared_aln': var_kw['shared_aln'],
                 'num_classes': var_kw['num_classes'], 'patch_nums': list(var_kw['patch_nums']),
                 'vae_ch': vae_kw['ch'], 'vocab_size': vae_kw['vocab_size'], 'z_channels': vae_kw['z_channels'],
                 'share_quant_resi': vae_kw['share_quant_resi']},
    }


def make_random(args):
    from models.var import VAR
    from models.vqvae import VQVAE
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    depth = args.make_random
    # VAE: torch default init (deterministic from the seed)
    vae = VQVAE(vocab_size=4096, z_channels=32, ch=args.vae_ch, test_mode=True, share_quant_resi=4,
                v_patch_nums=OFFICIAL_PATCH_NUMS)
    # VAR: as build_vae_var (default init disabled), then upstream init_weights covers every Linear/Embedding/LayerNorm
    with no_default_init((nn.Linear, nn.LayerNorm)):
        var = VAR(vae_local=vae, num_classes=1000, depth=depth, embed_dim=64 * depth, num_heads=depth, mlp_ratio=4.,
                  drop_rate=0., attn_drop_rate=0., drop_path_rate=0., norm_eps=1e-6, shared_aln=args.shared_aln,
                  cond_drop_rate=0.1, attn_l2_norm=True, patch_nums=OFFICIAL_PATCH_NUMS,
                  flash_if_available=False, fused_if_available=False)
    var.init_weights(init_adaln=0.5, init_adaln_gamma=1e-5, init_head=0.02, init_std=-1)
    for name, t in list(var.named_parameters()) + list(vae.named_parameters()):   # (attn_bias_for_masking holds -inf)
        if not torch.isfinite(t).all():
            raise RuntimeError(f'non-finite values in {name}')
    build_s = time.perf_counter() - t0
    os.makedirs(args.out, exist_ok=True)
    var_path = os.path.join(args.out, f'var_d{depth}.pth')
    vae_path = os.path.join(args.out, f'vae_ch{args.vae_ch}v4096z32.pth')
    t1 = time.perf_counter()
    torch.save(var.state_dict(), var_path)
    torch.save(vae.state_dict(), vae_path)
    save_s = time.perf_counter() - t1
    return {
        'var_path': os.path.abspath(var_path), 'vae_path': os.path.abspath(vae_path),
        'var_params': sum(p.numel() for p in var.parameters()),
        'vae_params': sum(p.numel() for p in vae.parameters()),
        'var_bytes': os.path.getsize(var_path), 'vae_bytes': os.path.getsize(vae_path),
        'var_tensors': len(var.state_dict()), 'vae_tensors': len(vae.state_dict()),
        'depth': depth, 'shared_aln': args.shared_aln, 'vae_ch': args.vae_ch, 'seed': args.seed,
        'build_s': build_s, 'save_s': save_s, 'peak_rss_mb': peak_rss_mb(), 'torch': torch.__version__,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--upstream', required=True, help='checkout of https://github.com/FoundationVision/VAR')
    ap.add_argument('--seed', type=int, default=0)
    g = ap.add_argument_group('timing')
    g.add_argument('--var', help='VAR state dict (.pth)')
    g.add_argument('--vae', help='VQVAE state dict (.pth)')
    g.add_argument('--batch', type=int, default=1)
    g.add_argument('--threads', type=int, default=1)
    g.add_argument('--repeats', type=int, default=3)
    g.add_argument('--cfg', type=float, default=1.5)
    g.add_argument('--top-k', type=int, default=0)
    g.add_argument('--top-p', type=float, default=0.)
    g.add_argument('--labels', default='207', help='comma-separated class indices, cycled to --batch')
    g = ap.add_argument_group('random official-shape files')
    g.add_argument('--make-random', type=int, metavar='DEPTH')
    g.add_argument('--out')
    g.add_argument('--vae-ch', type=int, default=160)
    g.add_argument('--shared-aln', action='store_true')
    args = ap.parse_args()
    if args.make_random is not None:
        if not args.out:
            ap.error('--make-random needs --out')
    else:
        if not (args.var and args.vae):
            ap.error('timing needs --var and --vae (or use --make-random DEPTH --out DIR)')
        if args.batch < 1 or args.threads < 1 or args.repeats < 1:
            ap.error('--batch, --threads and --repeats must be >= 1')
        try:
            args.labels = [int(s) for s in args.labels.split(',')]
        except ValueError:
            ap.error('--labels: comma-separated integers')

    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):      # upstream's prints go to stderr
        install_shims(args.upstream)
        result = make_random(args) if args.make_random is not None else bench(args)
    real_stdout.write(json.dumps(result) + '\n')
    real_stdout.flush()


if __name__ == '__main__':
    main()
