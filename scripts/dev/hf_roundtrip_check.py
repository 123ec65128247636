#!/usr/bin/env python3
"""Checks, with HF transformers, that folders Glimpse saved load back into HF (dev tool only).

    python3 hf_roundtrip_check.py OUT ORIGINALS

OUT is what scripts/dev/hf_roundtrip.mjs wrote; ORIGINALS holds the fixture folders it re-saved
(same names). For each re-saved checkpoint: from_pretrained reports no missing, unexpected or
mis-shaped keys, every tensor equals the original checkpoint's as HF loads it, and the configs
agree. For the CLIP Glimpse trained: tokenizer.json (through `tokenizers` and through AutoTokenizer)
gives Glimpse's ids, and HF's image and text features equal Glimpse's embeddings. Prints one JSON line per check; exits 1 on a failure.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file

out, originals = sys.argv[1], sys.argv[2]
failed = False
IGNORED_CONFIG = {'_name_or_path', 'transformers_version', 'name_or_path', 'dtype', 'torch_dtype'}


def flat(d, prefix=''):
    items = {}
    for k, v in d.items():
        if k in IGNORED_CONFIG:
            continue
        if isinstance(v, dict):
            items.update(flat(v, f'{prefix}{k}.'))
        else:
            items[f'{prefix}{k}'] = v
    return items


def report(entry):
    global failed
    failed = failed or not entry['ok']
    print(json.dumps(entry), flush=True)


for name in sorted(os.listdir(os.path.join(out, 'saved'))):
    saved = os.path.join(out, 'saved', name)
    orig = os.path.join(originals, name)
    try:
        arch = json.load(open(os.path.join(saved, 'config.json')))['architectures'][0]
        cls = getattr(transformers, arch)
        m_saved, info = cls.from_pretrained(saved, output_loading_info=True)
        m_orig = cls.from_pretrained(orig)
        a, b = m_saved.state_dict(), m_orig.state_dict()
        diff = max(((a[k] - b[k]).abs().max().item() for k in b if k in a and a[k].shape == b[k].shape), default=0.0)
        ca, cb = flat(m_saved.config.to_dict()), flat(m_orig.config.to_dict())
        config_diff = {k: [ca.get(k), cb.get(k)] for k in set(ca) | set(cb) if ca.get(k) != cb.get(k)}
        bad_keys = {k: v for k, v in info.items() if v}
        ok = not bad_keys and set(a) == set(b) and diff == 0.0 and not config_diff
        report({'check': f'saved/{name}', 'class': arch, 'ok': ok, 'max_weight_diff': diff, 'loading_info': bad_keys,
                'keys_only_saved': sorted(set(a) - set(b)), 'keys_only_original': sorted(set(b) - set(a)),
                'config_diff': config_diff})
    except Exception as e:  # one failing folder must not hide the others
        report({'check': f'saved/{name}', 'ok': False, 'error': f'{type(e).__name__}: {e}'})

trained = os.path.join(out, 'trained')
try:
    check = json.load(open(os.path.join(out, 'trained_check.json')))
    tensors = load_file(os.path.join(out, 'trained_check.safetensors'))
    model, info = transformers.CLIPModel.from_pretrained(trained, output_loading_info=True)
    model.eval()
    bad_keys = {k: v for k, v in info.items() if v}
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(trained, 'tokenizer.json'))
    hf_ids = [e.ids for e in tok.encode_batch(check['texts'])]
    ids = torch.tensor(check['input_ids'])

    def features(r):
        return r if torch.is_tensor(r) else r.pooler_output

    with torch.no_grad():
        img = features(model.get_image_features(pixel_values=tensors['pixel_values']))
        txt = features(model.get_text_features(input_ids=ids))
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    img_err = (img - tensors['image_embeds']).abs().max().item()
    txt_err = (txt - tensors['text_embeds']).abs().max().item()
    try:
        auto = transformers.AutoTokenizer.from_pretrained(trained)
        auto_ids = auto(check['texts'], padding='max_length', max_length=check['context_length'], truncation=True)['input_ids']
        auto_note = {'class': type(auto).__name__, 'same_ids': auto_ids == check['input_ids']}
    except Exception as e:
        auto_note = {'error': f'{type(e).__name__}: {e}'}
    ok = (not bad_keys and hf_ids == check['input_ids'] and auto_note.get('same_ids') is True
          and img_err < 1e-5 and txt_err < 1e-5)
    report({'check': 'trained CLIP', 'ok': ok, 'loading_info': bad_keys, 'tokenizer_json_same_ids': hf_ids == check['input_ids'],
            'hf_ids': hf_ids, 'glimpse_ids': check['input_ids'], 'image_embeds_err': img_err, 'text_embeds_err': txt_err,
            'auto_tokenizer': auto_note})
except Exception as e:
    report({'check': 'trained CLIP', 'ok': False, 'error': f'{type(e).__name__}: {e}'})

sys.exit(1 if failed else 0)
