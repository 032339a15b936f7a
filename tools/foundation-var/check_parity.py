#!/usr/bin/env python3
"""Compare outputs of the C# FoundationVar CLI with references written by make_fixtures.py.

Usage:
    python3 tools/foundation-var/check_parity.py --ref REF_DIR --ours OURS_DIR [--skip-missing]

REF_DIR (from make_fixtures.py): reference_vae.json, random_tokens.json, decoded/NNN.png,
    decoded_encoded/NNN.png, reference_plain.json, reference_shared.json
OURS_DIR (from the C# CLI): encoded.json (token file), decoded/NNN.png, decoded_encoded/NNN.png,
    logprobs_{plain|shared}_{random|encoded}_{plain|guided}.json, each [{"row", "prompt", "scales"}]

Checks: grey levels differ by at most 1, encoded tokens are identical, log-prob sums agree to
1e-4 relative to max(|ref|, 1). Exits 1 on any failure. Needs only the stdlib, numpy and PIL.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

GREY_TOL = 1
LOGPROB_RTOL = 1e-4
VARIANTS = ('plain', 'shared')
SETS = ('random', 'encoded')
KINDS = ('plain', 'guided')


class Report:
    def __init__(self, skip_missing):
        self.skip_missing = skip_missing
        self.failures = 0
        self.passes = 0
        self.skipped = 0

    def result(self, ok, name, detail):
        print(f'{"PASS" if ok else "FAIL"}  {name}: {detail}')
        if ok:
            self.passes += 1
        else:
            self.failures += 1

    def missing(self, name, path):
        if self.skip_missing:
            print(f'SKIP  {name}: {path} not found')
            self.skipped += 1
        else:
            self.result(False, name, f'{path} not found')


def load_json(path):
    with open(path) as fp:
        return json.load(fp)


def load_png(path):
    return np.asarray(Image.open(path).convert('RGB'), dtype=np.int16)


def check_images(rep, ref_dir, ours_dir, folder):
    ref_folder = os.path.join(ref_dir, folder)
    names = sorted(n for n in os.listdir(ref_folder) if n.endswith('.png'))
    if not names:
        rep.result(False, folder, f'no reference PNGs in {ref_folder}')
        return
    worst, worst_name, n_off, problems = 0, None, 0, []
    for n in names:
        p = os.path.join(ours_dir, folder, n)
        if not os.path.exists(p):
            problems.append(f'{n} missing')
            continue
        a, b = load_png(os.path.join(ref_folder, n)), load_png(p)
        if a.shape != b.shape:
            problems.append(f'{n} shape {b.shape} != {a.shape}')
            continue
        d = np.abs(a - b)
        n_off += int((d > 0).sum())
        if int(d.max()) >= worst:
            worst, worst_name = int(d.max()), n
    if problems and all(p.endswith('missing') for p in problems) and len(problems) == len(names):
        rep.missing(folder, os.path.join(ours_dir, folder))
        return
    ok = not problems and worst <= GREY_TOL
    detail = f'{len(names)} images, max |grey diff| {worst} (worst {worst_name}, tol {GREY_TOL}), ' \
             f'{n_off} channel values differ'
    if problems:
        detail += '; ' + '; '.join(problems)
    rep.result(ok, folder, detail)


def check_tokens(rep, ref_dir, ours_dir):
    ref = load_json(os.path.join(ref_dir, 'reference_vae.json'))
    p = os.path.join(ours_dir, 'encoded.json')
    if not os.path.exists(p):
        rep.missing('encoded tokens', p)
        return
    ours = load_json(p)
    problems = []
    if [list(s) for s in ours.get('schedule', [])] != [list(s) for s in ref['schedule']]:
        problems.append(f'schedule {ours.get("schedule")} != {ref["schedule"]}')
    rr, orows = ref['rows'], ours.get('rows', [])
    if len(orows) != len(rr):
        problems.append(f'{len(orows)} rows, expected {len(rr)}')
    S = len(ref['schedule'])
    bad_per_scale = [0] * S
    total = 0
    notes = []
    for i, (r, o) in enumerate(zip(rr, orows)):
        if o.get('prompt', r['prompt']) != r['prompt']:
            notes.append(f'row {i} prompt {o.get("prompt")!r} (reference {r["prompt"]!r})')
        osc = o.get('scales', [])
        if len(osc) != S:
            problems.append(f'row {i}: {len(osc)} scales, expected {S}')
            continue
        for si in range(S):
            a, b = r['scales'][si], osc[si]
            total += len(a)
            if len(a) != len(b):
                problems.append(f'row {i} scale {si}: {len(b)} tokens, expected {len(a)}')
                continue
            bad_per_scale[si] += sum(1 for x, y in zip(a, b) if x != y)
    ok = not problems and sum(bad_per_scale) == 0
    detail = f'{len(rr)} rows, {total} tokens, mismatches per scale {bad_per_scale}'
    if problems:
        detail += '; ' + '; '.join(problems)
    rep.result(ok, 'encoded tokens', detail)
    for n in notes:
        print(f'      note: {n}')


def check_logprobs(rep, ref_dir, ours_dir):
    for v in VARIANTS:
        rp = os.path.join(ref_dir, f'reference_{v}.json')
        if not os.path.exists(rp):
            rep.result(False, f'reference_{v}', f'{rp} not found')
            continue
        ref = load_json(rp)
        for st in SETS:
            for kind in KINDS:
                name = f'logprobs {v}/{st}/{kind}'
                p = os.path.join(ours_dir, f'logprobs_{v}_{st}_{kind}.json')
                if not os.path.exists(p):
                    rep.missing(name, p)
                    continue
                ours = {int(o['row']): o for o in load_json(p)}
                problems, worst, where = [], 0.0, None
                for r in ref[st][kind]:
                    o = ours.get(int(r['row']))
                    if o is None:
                        problems.append(f'row {r["row"]} missing')
                        continue
                    if o.get('prompt') != r['prompt']:
                        problems.append(f'row {r["row"]} prompt {o.get("prompt")!r} != {r["prompt"]!r}')
                    if len(o['scales']) != len(r['scales']):
                        problems.append(f'row {r["row"]}: {len(o["scales"])} scales, expected {len(r["scales"])}')
                        continue
                    for si, (a, b) in enumerate(zip(r['scales'], o['scales'])):
                        rel = abs(float(b) - float(a)) / max(abs(float(a)), 1.0)
                        if not rel <= worst:   # also catches NaN
                            worst, where = rel, f'row {r["row"]} scale {si}: ours {b} ref {a}'
                extra = sorted(set(ours) - {int(r['row']) for r in ref[st][kind]})
                if extra:
                    problems.append(f'unexpected rows {extra}')
                ok = not problems and worst <= LOGPROB_RTOL
                detail = f'{len(ref[st][kind])} rows, max rel diff {worst:.3e} (tol {LOGPROB_RTOL:g})'
                if where and worst > 0:
                    detail += f' at {where}'
                if problems:
                    detail += '; ' + '; '.join(problems)
                rep.result(ok, name, detail)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--ref', required=True, help='folder written by make_fixtures.py')
    ap.add_argument('--ours', required=True, help='folder written by the C# CLI')
    ap.add_argument('--skip-missing', action='store_true', help='report absent outputs as SKIP instead of FAIL')
    args = ap.parse_args()
    rep = Report(args.skip_missing)
    check_tokens(rep, args.ref, args.ours)
    check_images(rep, args.ref, args.ours, 'decoded')
    check_images(rep, args.ref, args.ours, 'decoded_encoded')
    check_logprobs(rep, args.ref, args.ours)
    print(f'{rep.passes} passed, {rep.failures} failed, {rep.skipped} skipped')
    sys.exit(1 if rep.failures else 0)


if __name__ == '__main__':
    main()
