"""Dev tool: loads what scripts/dev/hf_ssl_check.mjs wrote into HF transformers and compares.

    python3 scripts/dev/hf_ssl_check.py OUT

Checks, printing one JSON line each and exiting non-zero on a failure: the MLM-trained BERT loads
as BertForMaskedLM with no missing or unexpected keys and gives Glimpse's logits; its tokenizer.json
loads as BertTokenizerFast (and through AutoTokenizer) and gives Glimpse's ids; the MAE loads as
ViTMAEForPreTraining and gives Glimpse's loss and logits for the same noise, and as a ViTModel gives
the encoder features Glimpse's vitModelFromMAE gives; the classifier fine-tuned from it loads as
ViTForImageClassification with Glimpse's logits.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import (AutoTokenizer, BertForMaskedLM, BertTokenizerFast, ViTForImageClassification,
                          ViTMAEForPreTraining, ViTModel)

out = sys.argv[1]
ref = load_file(os.path.join(out, 'check.safetensors'))
meta = json.load(open(os.path.join(out, 'check.json')))
failed = False


def report(name, ok, **info):
    global failed
    failed |= not ok
    print(json.dumps({'check': name, 'ok': bool(ok), **info}, default=sorted))


def loaded(cls, folder, **kw):
    model, info = cls.from_pretrained(os.path.join(out, folder), output_loading_info=True, **kw)
    bad = {k: v for k, v in info.items() if v}
    return model.eval(), bad


def close(name, a, b, tol, **extra):
    diff = (a.float() - b.float()).abs().max().item()
    report(name, diff <= tol, max_abs_diff=diff, tol=tol, **extra)


with torch.no_grad():
    bert, bad = loaded(BertForMaskedLM, 'bert')
    report('bert loads', not bad, loading_info=bad)
    logits = bert(input_ids=ref['bert_input_ids'], attention_mask=ref['bert_attention_mask']).logits
    close('bert logits', logits, ref['bert_logits'], 1e-4)
    for cls in (BertTokenizerFast, AutoTokenizer):
        tok = cls.from_pretrained(os.path.join(out, 'bert'))
        ids = tok(meta['texts'], padding='longest')['input_ids']
        report(f'bert tokenizer ({cls.__name__})', ids == meta['input_ids'], hf=ids, glimpse=meta['input_ids'], cls=type(tok).__name__)

    mae, bad = loaded(ViTMAEForPreTraining, 'mae')
    report('mae loads', not bad, loading_info=bad)
    o = mae(pixel_values=ref['pixel_values'], noise=ref['noise'])
    close('mae logits', o.logits, ref['mae_logits'], 1e-4)
    close('mae loss', o.loss.reshape(1), ref['mae_loss'], 1e-5)
    vit, bad = loaded(ViTModel, 'mae', add_pooling_layer=False)
    # HF warns that a vit_mae config builds a ViTModel; the encoder keys are what must match.
    report('mae as ViTModel loads', not bad.get('missing_keys'), loading_info=bad)
    close('mae encoder features', vit(pixel_values=ref['pixel_values']).last_hidden_state, ref['mae_encoder_hidden'], 1e-4)

    ft, bad = loaded(ViTForImageClassification, 'mae_ft')
    report('mae_ft loads', not bad, loading_info=bad)
    close('mae_ft logits', ft(pixel_values=ref['ft_pixel_values']).logits, ref['ft_logits'], 1e-4)

sys.exit(1 if failed else 0)
