#!/usr/bin/env python3
"""Hugging Face parity fixtures of other sizes, for `glimpse parity` (dev tool only).

    python3 make_hf_fixtures.py OUTDIR [--only FAMILY[_VARIANT],...]

writes OUTDIR/<family>_<variant>/ for clip, siglip, vit, bert_mlm, blip_caption, blip_itm and
vit_mae, two variants each, in the layout of the shared fixtures (fixtures/hf/<family>, see their
README.md):

  config.json, model.safetensors   save_pretrained of a tiny randomly initialised model
  inputs.safetensors               forward arguments by HF name (integer tensors int64)
  outputs.safetensors              reference outputs (float32; ids and indices int64)
  grads.safetensors                d(scalar)/d(parameter) for every trainable parameter, by its
                                   named_parameters() name
  meta.json                        class, input and output shapes, the scalar and its loss_fn

The variants change what the shared fixtures keep fixed: widths, head counts and head sizes,
depths, intermediate sizes (text and vision towers differ), image and patch sizes (a non-square
ViT grid; non-square images through interpolate_pos_encoding), sequence lengths, batch sizes,
vocabulary sizes, padding in attention masks, activations (CLIP gelu and quick_gelu), an untied
BERT decoder, BLIP label smoothing, ViT-MAE mask ratio and norm_pix_loss.

Needs only torch, transformers (written against 5.x) and safetensors; runs offline. Everything
is seeded and runs on CPU in float32 with one thread, so reruns give the same files. Each variant
runs on its own: one that fails is reported and the others are still written. Exits 1 when any
failed.
"""
import json
import os
import shutil
import sys
import traceback

import torch
from safetensors.torch import save_file

import transformers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipForImageTextRetrieval,
    CLIPConfig,
    CLIPModel,
    SiglipConfig,
    SiglipModel,
    ViTConfig,
    ViTForImageClassification,
    ViTMAEConfig,
    ViTMAEForPreTraining,
)

# The scalars whose gradients the fixtures hold, named as the shared fixtures' meta.json name them
# (the parity tool checks these strings).
LOSS_CLIP = "CLIP symmetric cross-entropy over logits_per_text"
LOSS_SIGLIP = "SigLIP pairwise sigmoid loss"
LOSS_VIT = "cross-entropy"
LOSS_BERT = "masked-LM cross-entropy"
LOSS_BLIP_ITM = "sum(logsumexp(itm_logits,-1)) + sum(itc_similarity)  (a test scalar, not a training loss)"
LOSS_VIT_MAE = "MAE normalised-pixel MSE on masked patches"
LOSS_VIT_MAE_RAW = "MAE pixel MSE on masked patches"


# ---------------------------------------------------------------------------------------------
# Shared helpers


def build(cls, config, seed):
    """The model with weights drawn under `seed`, eager attention (plain softmax, no fused path), eval mode."""
    torch.manual_seed(seed)
    try:
        model = cls._from_config(config, attn_implementation="eager")
    except Exception as e:  # noqa: BLE001 - any refusal: the default attention is as good a reference
        print(f"  note: eager attention not available ({type(e).__name__}: {e}); default attention")
        torch.manual_seed(seed)
        model = cls(config)
    model.eval()  # dropout off; gradients still flow
    return model


def generator(seed):
    return torch.Generator().manual_seed(seed)


def text_batch(g, lengths, seq, vocab, pad, bos=None, eos=None):
    """input_ids [B, seq] (int64) with random ids in [2, vocab - 2), bos first and eos last of each
    row's `lengths[b]` tokens, pad after; attention_mask 1 on the tokens, 0 on the padding."""
    batch = len(lengths)
    ids = torch.randint(2, vocab - 2, (batch, seq), generator=g, dtype=torch.int64)
    mask = torch.zeros(batch, seq, dtype=torch.int64)
    for b, n in enumerate(lengths):
        assert 2 <= n <= seq
        if bos is not None:
            ids[b, 0] = bos
        if eos is not None:
            ids[b, n - 1] = eos
        ids[b, n:] = pad
        mask[b, :n] = 1
    return ids, mask


def pixels(g, batch, height, width, channels=3):
    return torch.randn(batch, channels, height, width, generator=g, dtype=torch.float32)


def output_of(out, *names):
    """The first of `names` that the model output has (field names moved between versions)."""
    for n in names:
        v = getattr(out, n, None)
        if v is not None:
            return v
    raise KeyError(f"model output has none of {names} (has {list(out.keys()) if hasattr(out, 'keys') else type(out)})")


def tensor_file(tensors):
    """Contiguous, detached, unshared copies (safetensors refuses shared storage); scalars as [1]."""
    out = {}
    for k, v in tensors.items():
        v = v.detach()
        if v.dim() == 0:
            v = v.reshape(1)
        out[k] = v.contiguous().clone()
    return out


def gradients(model):
    """d loss / d p for every trainable parameter by its named_parameters() name; zeros where none reached it."""
    grads = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        grads[name] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
    return grads


def write_fixture(folder, model, cls_name, inputs, outputs, loss, meta_extra):
    """Backward of `loss` (when given), then every file of the fixture folder."""
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    grads = None
    if loss is not None:
        model.zero_grad(set_to_none=True)
        loss.backward()
        grads = gradients(model)
    model.save_pretrained(folder)
    inputs = tensor_file(inputs)
    outputs = tensor_file(outputs)
    save_file(inputs, os.path.join(folder, "inputs.safetensors"))
    save_file(outputs, os.path.join(folder, "outputs.safetensors"))
    if grads is not None:
        save_file(tensor_file(grads), os.path.join(folder, "grads.safetensors"))
    meta = {
        "class": cls_name,
        "inputs": {k: list(v.shape) for k, v in inputs.items()},
        "outputs": {k: list(v.shape) for k, v in outputs.items()},
    }
    if loss is not None:
        meta["loss"] = float(loss.detach())
    meta.update(meta_extra)
    meta["transformers_version"] = transformers.__version__
    meta["torch_version"] = torch.__version__
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    for name, v in list(outputs.items()) + ([] if grads is None else list(grads.items())):
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"{name} has non-finite values")
    return meta


# ---------------------------------------------------------------------------------------------
# CLIP


def clip_fixture(folder, seed, text, vision, projection_dim, lengths, seq, image_hw):
    vocab = text["vocab_size"]
    config = CLIPConfig(
        text_config=dict(text, pad_token_id=0, bos_token_id=vocab - 2, eos_token_id=vocab - 1),
        vision_config=vision,
        projection_dim=projection_dim,
    )
    model = build(CLIPModel, config, seed)
    g = generator(seed + 1)
    # eos is the largest id and appears once per row, so the pooled token is the same whether the
    # text tower pools at the first eos or at the argmax id.
    ids, mask = text_batch(g, lengths, seq, vocab, pad=0, bos=vocab - 2, eos=vocab - 1)
    pv = pixels(g, len(lengths), *image_hw)
    native = vision["image_size"]
    interpolate = tuple(image_hw) != (native, native)
    extra = {"interpolate_pos_encoding": True} if interpolate else {}
    out = model(input_ids=ids, pixel_values=pv, attention_mask=mask, return_loss=True, **extra)
    # The towers' own outputs, run again on the same inputs (deterministic on CPU), so the names
    # do not depend on how CLIPOutput nests them in this transformers version.
    text_out = model.text_model(input_ids=ids, attention_mask=mask)
    vision_out = model.vision_model(pixel_values=pv, **extra)
    text_features = model.text_projection(text_out.pooler_output)
    image_features = model.visual_projection(vision_out.pooler_output)
    with torch.no_grad():
        assert torch.allclose(text_features / text_features.norm(dim=-1, keepdim=True), out.text_embeds, atol=1e-5)
        assert torch.allclose(image_features / image_features.norm(dim=-1, keepdim=True), out.image_embeds, atol=1e-5)
    outputs = {
        "text_embeds": out.text_embeds,
        "image_embeds": out.image_embeds,
        "logits_per_image": out.logits_per_image,
        "text_last_hidden_state": text_out.last_hidden_state,
        # As the shared fixture: the projected features before L2 normalisation.
        "text_pooler_output": text_features,
        "vision_last_hidden_state": vision_out.last_hidden_state,
        "vision_pooler_output": image_features,
        "loss": out.loss,
    }
    inputs = {"input_ids": ids, "attention_mask": mask, "pixel_values": pv}
    return write_fixture(folder, model, "CLIPModel", inputs, outputs, out.loss, {"loss_fn": LOSS_CLIP, **extra})


def clip_gelu_wide(folder, seed):
    """gelu towers of different widths and depths (head size 8 in both), 48 px / patch 12, padded texts."""
    return clip_fixture(
        folder, seed,
        text=dict(vocab_size=120, hidden_size=48, num_attention_heads=6, num_hidden_layers=3, intermediate_size=70,
                  max_position_embeddings=20, hidden_act="gelu"),
        vision=dict(hidden_size=40, num_attention_heads=5, num_hidden_layers=2, intermediate_size=56, image_size=48,
                    patch_size=12, hidden_act="gelu"),
        projection_dim=20, lengths=[11, 7], seq=11, image_hw=(48, 48))


def clip_quick_gelu_interpolated(folder, seed):
    """quick_gelu, text head size 16 vs vision 8, batch 4; 40x48 images on a 32 px model (interpolated positions)."""
    return clip_fixture(
        folder, seed,
        text=dict(vocab_size=77, hidden_size=32, num_attention_heads=2, num_hidden_layers=1, intermediate_size=44,
                  max_position_embeddings=8, hidden_act="quick_gelu", layer_norm_eps=1e-6),
        vision=dict(hidden_size=24, num_attention_heads=3, num_hidden_layers=3, intermediate_size=36, image_size=32,
                    patch_size=8, hidden_act="quick_gelu", layer_norm_eps=1e-6),
        projection_dim=16, lengths=[6, 6, 3, 5], seq=6, image_hw=(40, 48))


# ---------------------------------------------------------------------------------------------
# SigLIP


def siglip_fixture(folder, seed, text, vision, batch, seq, image_hw, lengths=None):
    # SigLIP reads neither id; inside the vocabulary they only keep transformers from warning.
    text = dict(dict(bos_token_id=text["vocab_size"] - 2, eos_token_id=text["vocab_size"] - 1), **text)
    config = SiglipConfig(text_config=text, vision_config=vision)
    model = build(SiglipModel, config, seed)
    g = generator(seed + 1)
    pad = text.get("pad_token_id", 1)
    inputs = {}
    if lengths is None:
        # As SigLIP is trained: full-length texts, no attention mask.
        ids = torch.randint(2, text["vocab_size"], (batch, seq), generator=g, dtype=torch.int64)
    else:
        ids, mask = text_batch(g, lengths, seq, text["vocab_size"], pad=pad)
        inputs["attention_mask"] = mask
    inputs = {"input_ids": ids, **inputs}
    pv = pixels(g, batch, *image_hw)
    inputs["pixel_values"] = pv
    native = vision["image_size"]
    extra = {"interpolate_pos_encoding": True} if tuple(image_hw) != (native, native) else {}
    out = model(**inputs, return_loss=True, **extra)
    text_out = model.text_model(input_ids=ids, attention_mask=inputs.get("attention_mask"))
    vision_out = model.vision_model(pixel_values=pv, **extra)
    with torch.no_grad():
        pooled = vision_out.pooler_output
        assert torch.allclose(pooled / pooled.norm(dim=-1, keepdim=True), out.image_embeds, atol=1e-5)
    outputs = {
        "text_embeds": out.text_embeds,
        "image_embeds": out.image_embeds,
        "logits_per_image": out.logits_per_image,
        "text_last_hidden_state": text_out.last_hidden_state,
        "vision_last_hidden_state": vision_out.last_hidden_state,
        "vision_pooler_output": vision_out.pooler_output,
        "loss": out.loss,
    }
    return write_fixture(folder, model, "SiglipModel", inputs, outputs, out.loss, {"loss_fn": LOSS_SIGLIP, **extra})


def siglip_wide(folder, seed):
    """Text 40 wide projected to the 48-wide vision space, 24 px / patch 4 (36 patches), no mask."""
    return siglip_fixture(
        folder, seed,
        text=dict(vocab_size=150, hidden_size=40, num_attention_heads=4, num_hidden_layers=3, intermediate_size=64,
                  max_position_embeddings=10, projection_size=48, hidden_act="gelu_pytorch_tanh"),
        vision=dict(hidden_size=48, num_attention_heads=4, num_hidden_layers=2, intermediate_size=80, image_size=24,
                    patch_size=4, hidden_act="gelu_pytorch_tanh"),
        batch=2, seq=10, image_hw=(24, 24))


def siglip_padded_interpolated(folder, seed):
    """exact gelu, padded texts with a mask, batch 3; 32x40 images on a 32 px model (interpolated positions)."""
    return siglip_fixture(
        folder, seed,
        text=dict(vocab_size=64, hidden_size=24, num_attention_heads=3, num_hidden_layers=2, intermediate_size=30,
                  max_position_embeddings=9, projection_size=32, hidden_act="gelu", pad_token_id=1, layer_norm_eps=1e-5),
        vision=dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=1, intermediate_size=48, image_size=32,
                    patch_size=8, hidden_act="gelu", layer_norm_eps=1e-5),
        batch=3, seq=9, image_hw=(32, 40), lengths=[9, 4, 7])


# ---------------------------------------------------------------------------------------------
# ViT


def vit_fixture(folder, seed, config_kwargs, batch, image_hw):
    config = ViTConfig(**config_kwargs)
    model = build(ViTForImageClassification, config, seed)
    g = generator(seed + 1)
    pv = pixels(g, batch, *image_hw)
    labels = torch.randint(0, config.num_labels, (batch,), generator=g, dtype=torch.int64)
    size = config.image_size
    native = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    extra = {"interpolate_pos_encoding": True} if tuple(image_hw) != native else {}
    out = model(pixel_values=pv, labels=labels, output_hidden_states=True, **extra)
    outputs = {"logits": out.logits, "last_hidden_state": out.hidden_states[-1], "loss": out.loss}
    inputs = {"pixel_values": pv, "labels": labels}
    return write_fixture(folder, model, "ViTForImageClassification", inputs, outputs, out.loss,
                         {"loss_fn": LOSS_VIT, "note": "last_hidden_state is before the final layernorm", **extra})


def vit_nonsquare(folder, seed):
    """A 24x40 model (3x5 grid of 8 px patches), width 48, 3 layers, 7 classes."""
    return vit_fixture(folder, seed, dict(
        hidden_size=48, num_attention_heads=4, num_hidden_layers=3, intermediate_size=60, image_size=[24, 40],
        patch_size=8, num_labels=7, hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        batch=3, image_hw=(24, 40))


def vit_interpolated(folder, seed):
    """No qkv bias, tanh gelu, patch 4 on a 32 px model run at 24x40 (interpolated positions)."""
    return vit_fixture(folder, seed, dict(
        hidden_size=24, num_attention_heads=2, num_hidden_layers=1, intermediate_size=40, image_size=32, patch_size=4,
        num_labels=3, qkv_bias=False, hidden_act="gelu_new", layer_norm_eps=1e-6,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        batch=2, image_hw=(24, 40))


# ---------------------------------------------------------------------------------------------
# BERT


def bert_fixture(folder, seed, config_kwargs, lengths, seq):
    config = BertConfig(**config_kwargs)
    model = build(BertForMaskedLM, config, seed)
    g = generator(seed + 1)
    vocab = config.vocab_size
    mask_id = vocab - 1
    ids, mask = text_batch(g, lengths, seq, vocab, pad=config.pad_token_id)
    types = torch.randint(0, config.type_vocab_size, (len(lengths), seq), generator=g, dtype=torch.int64) * mask
    # About a third of each row's tokens are masked and scored, at least one; the rest are -100.
    labels = torch.full_like(ids, -100)
    for b, n in enumerate(lengths):
        picked = torch.randperm(n, generator=g)[: max(1, n // 3)]
        labels[b, picked] = ids[b, picked]
        ids[b, picked] = mask_id
    out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "labels": labels}
    outputs = {"logits": out.logits, "loss": out.loss}
    return write_fixture(folder, model, "BertForMaskedLM", inputs, outputs, out.loss, {"loss_fn": LOSS_BERT})


def bert_mlm_wide(folder, seed):
    """Width 48 in 4 heads, 3 layers, 3 token types, vocab 120, batch 3 with padding."""
    return bert_fixture(folder, seed, dict(
        vocab_size=120, hidden_size=48, num_attention_heads=4, num_hidden_layers=3, intermediate_size=64,
        max_position_embeddings=40, type_vocab_size=3, hidden_act="gelu", pad_token_id=0), lengths=[13, 9, 5], seq=13)


def bert_mlm_untied(folder, seed):
    """An untied decoder matrix, tanh gelu, width 24 in 2 heads, 1 layer, vocab 80."""
    return bert_fixture(folder, seed, dict(
        vocab_size=80, hidden_size=24, num_attention_heads=2, num_hidden_layers=1, intermediate_size=30,
        max_position_embeddings=16, type_vocab_size=2, hidden_act="gelu_new", layer_norm_eps=1e-7,
        tie_word_embeddings=False, pad_token_id=0), lengths=[7, 4], seq=7)


# ---------------------------------------------------------------------------------------------
# BLIP


def blip_config(text, vision, **top):
    vocab = text["vocab_size"]
    # bos and sep (= eos, where generation stops) out of the range text_batch draws from; pad 0.
    text = dict(dict(bos_token_id=vocab - 2, eos_token_id=vocab - 1, sep_token_id=vocab - 1, pad_token_id=0,
                     encoder_hidden_size=vision["hidden_size"], is_decoder=True,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), **text)
    return BlipConfig(text_config=text, vision_config=dict(vision, attention_dropout=0.0), **top)


def top2_margin(model, pv, max_new_tokens, extra):
    """The smallest gap between the best and second-best next-token logit over the greedy steps
    (a tie would make the reference ids fragile), or None where this version will not say."""
    try:
        res = model.generate(pixel_values=pv, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             output_scores=True, return_dict_in_generate=True, **extra)
        gaps = [(s.topk(2, dim=-1).values[:, 0] - s.topk(2, dim=-1).values[:, 1]).min().item() for s in res.scores]
        return min(gaps) if gaps else None
    except Exception:  # a diagnostic only
        return None


def blip_caption_fixture(folder, seed, text, vision, lengths, seq, image_hw, max_new_tokens, label_smoothing=0.0):
    text = dict(text, label_smoothing=label_smoothing)
    config = blip_config(text, vision, label_smoothing=label_smoothing)
    model = build(BlipForConditionalGeneration, config, seed)
    g = generator(seed + 1)
    tc = config.text_config
    ids, mask = text_batch(g, lengths, seq, tc.vocab_size, pad=tc.pad_token_id, bos=tc.bos_token_id, eos=tc.sep_token_id)
    labels = ids.masked_fill(mask == 0, -100)
    pv = pixels(g, len(lengths), *image_hw)
    native = vision["image_size"]
    extra = {"interpolate_pos_encoding": True} if tuple(image_hw) != (native, native) else {}
    out = model(pixel_values=pv, input_ids=ids, attention_mask=mask, labels=labels, **extra)
    logits = output_of(out, "logits", "decoder_logits")
    with torch.no_grad():
        generated = model.generate(pixel_values=pv, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, **extra)
    if generated.shape[1] != 1 + max_new_tokens:
        print(f"  note: generate stopped early ({generated.shape[1] - 1} of {max_new_tokens} new tokens: every row reached sep)")
    margin = top2_margin(model, pv, max_new_tokens, extra)
    inputs = {"input_ids": ids, "attention_mask": mask, "pixel_values": pv, "labels": labels}
    outputs = {"logits": logits, "loss": out.loss, "generated_ids": generated.to(torch.int64)}
    meta = {"generate": f"greedy, max_new_tokens={max_new_tokens}, starts from bos", **extra}
    if margin is not None:
        meta["generate_min_top2_margin"] = margin
    if label_smoothing:
        meta["label_smoothing"] = label_smoothing
    return write_fixture(folder, model, "BlipForConditionalGeneration", inputs, outputs, out.loss, meta)


def blip_caption_wide(folder, seed):
    """Text 48 wide (4 heads, 3 layers) over 40-wide image embeddings (24 px / patch 6), vocab 120, batch 3."""
    return blip_caption_fixture(
        folder, seed,
        text=dict(vocab_size=120, hidden_size=48, num_attention_heads=4, num_hidden_layers=3, intermediate_size=64,
                  max_position_embeddings=40, hidden_act="gelu"),
        vision=dict(hidden_size=40, num_attention_heads=4, num_hidden_layers=2, intermediate_size=50, image_size=24,
                    patch_size=6, hidden_act="gelu"),
        lengths=[9, 6, 4], seq=9, image_hw=(24, 24), max_new_tokens=8)


def blip_caption_smoothed_interpolated(folder, seed):
    """Label smoothing 0.1, text head size 16 vs vision 12, 3 vision layers; 24x40 images on a 32 px model."""
    return blip_caption_fixture(
        folder, seed,
        text=dict(vocab_size=70, hidden_size=32, num_attention_heads=2, num_hidden_layers=1, intermediate_size=40,
                  max_position_embeddings=24, hidden_act="gelu"),
        vision=dict(hidden_size=24, num_attention_heads=2, num_hidden_layers=3, intermediate_size=30, image_size=32,
                    patch_size=8, hidden_act="gelu", layer_norm_eps=1e-6),
        lengths=[6, 3], seq=6, image_hw=(24, 40), max_new_tokens=5, label_smoothing=0.1)


def blip_itm_fixture(folder, seed, text, vision, lengths, seq, image_hw, image_text_hidden_size):
    config = blip_config(text, vision, image_text_hidden_size=image_text_hidden_size)
    model = build(BlipForImageTextRetrieval, config, seed)
    g = generator(seed + 1)
    tc = config.text_config
    ids, mask = text_batch(g, lengths, seq, tc.vocab_size, pad=tc.pad_token_id, bos=tc.bos_token_id, eos=tc.sep_token_id)
    pv = pixels(g, len(lengths), *image_hw)
    native = vision["image_size"]
    extra = {"interpolate_pos_encoding": True} if tuple(image_hw) != (native, native) else {}
    itm = model(input_ids=ids, pixel_values=pv, attention_mask=mask, use_itm_head=True, **extra).itm_score
    itc = model(input_ids=ids, pixel_values=pv, attention_mask=mask, use_itm_head=False, **extra).itm_score
    loss = torch.logsumexp(itm, dim=-1).sum() + itc.sum()
    inputs = {"input_ids": ids, "attention_mask": mask, "pixel_values": pv}
    outputs = {"itm_logits": itm, "itc_similarity": itc}
    return write_fixture(folder, model, "BlipForImageTextRetrieval", inputs, outputs, loss, {"loss_fn": LOSS_BLIP_ITM, **extra})


def blip_itm_wide(folder, seed):
    """Text 48 wide over 40-wide image embeddings (24 px / patch 6), ITC width 20, batch 3 with padding."""
    return blip_itm_fixture(
        folder, seed,
        text=dict(vocab_size=120, hidden_size=48, num_attention_heads=4, num_hidden_layers=3, intermediate_size=64,
                  max_position_embeddings=40, hidden_act="gelu"),
        vision=dict(hidden_size=40, num_attention_heads=4, num_hidden_layers=2, intermediate_size=50, image_size=24,
                    patch_size=6, hidden_act="gelu"),
        lengths=[9, 5, 7], seq=9, image_hw=(24, 24), image_text_hidden_size=20)


def blip_itm_narrow(folder, seed):
    """Text 24 wide in 3 heads over 36-wide image embeddings (32 px / patch 4, 64 patches), ITC width 12, batch 2."""
    return blip_itm_fixture(
        folder, seed,
        text=dict(vocab_size=60, hidden_size=24, num_attention_heads=3, num_hidden_layers=2, intermediate_size=28,
                  max_position_embeddings=16, hidden_act="gelu"),
        vision=dict(hidden_size=36, num_attention_heads=3, num_hidden_layers=1, intermediate_size=44, image_size=32,
                    patch_size=4, hidden_act="gelu"),
        lengths=[4, 7], seq=7, image_hw=(32, 32), image_text_hidden_size=12)


# ---------------------------------------------------------------------------------------------
# ViT-MAE


def vit_mae_fixture(folder, seed, config_kwargs, batch):
    config = ViTMAEConfig(**config_kwargs)
    model = build(ViTMAEForPreTraining, config, seed)
    g = generator(seed + 1)
    size = config.image_size
    pv = pixels(g, batch, size, size)
    patches = (size // config.patch_size) ** 2
    noise = torch.rand(batch, patches, generator=g, dtype=torch.float32)
    out = model(pixel_values=pv, noise=noise)
    outputs = {"logits": out.logits, "mask": out.mask, "ids_restore": out.ids_restore.to(torch.int64), "loss": out.loss}
    loss_fn = LOSS_VIT_MAE if config.norm_pix_loss else LOSS_VIT_MAE_RAW
    meta = {"loss_fn": loss_fn, "note": "fixed sin-cos position embeddings",
            "mask_ratio": config.mask_ratio, "norm_pix_loss": config.norm_pix_loss}
    return write_fixture(folder, model, "ViTMAEForPreTraining", {"pixel_values": pv, "noise": noise}, outputs, out.loss, meta)


def vit_mae_deep(folder, seed):
    """24 px / patch 4 (36 patches), mask ratio 0.6, width 48 in 3 layers, decoder 24 wide in 2 layers."""
    return vit_mae_fixture(folder, seed, dict(
        hidden_size=48, num_attention_heads=4, num_hidden_layers=3, intermediate_size=64, image_size=24, patch_size=4,
        decoder_hidden_size=24, decoder_num_attention_heads=3, decoder_num_hidden_layers=2, decoder_intermediate_size=40,
        mask_ratio=0.6, norm_pix_loss=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), batch=3)


def vit_mae_raw_pixels(folder, seed):
    """Plain pixel loss (norm_pix_loss false), mask ratio 0.5, no qkv bias, decoder head size 4."""
    return vit_mae_fixture(folder, seed, dict(
        hidden_size=32, num_attention_heads=2, num_hidden_layers=1, intermediate_size=40, image_size=32, patch_size=8,
        decoder_hidden_size=16, decoder_num_attention_heads=4, decoder_num_hidden_layers=1, decoder_intermediate_size=20,
        mask_ratio=0.5, norm_pix_loss=False, qkv_bias=False, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        batch=2)


# ---------------------------------------------------------------------------------------------

VARIANTS = [
    ("clip", "gelu_wide", clip_gelu_wide),
    ("clip", "quick_gelu_interpolated", clip_quick_gelu_interpolated),
    ("siglip", "wide", siglip_wide),
    ("siglip", "padded_interpolated", siglip_padded_interpolated),
    ("vit", "nonsquare", vit_nonsquare),
    ("vit", "interpolated", vit_interpolated),
    ("bert_mlm", "wide", bert_mlm_wide),
    ("bert_mlm", "untied", bert_mlm_untied),
    ("blip_caption", "wide", blip_caption_wide),
    ("blip_caption", "smoothed_interpolated", blip_caption_smoothed_interpolated),
    ("blip_itm", "wide", blip_itm_wide),
    ("blip_itm", "narrow", blip_itm_narrow),
    ("vit_mae", "deep", vit_mae_deep),
    ("vit_mae", "raw_pixels", vit_mae_raw_pixels),
]


def main(argv):
    if len(argv) < 2 or argv[1].startswith("-"):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    outdir = argv[1]
    only = None
    if len(argv) >= 4 and argv[2] == "--only":
        only = set(argv[3].split(","))
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    os.makedirs(outdir, exist_ok=True)
    results = []
    for i, (family, variant, make) in enumerate(VARIANTS):
        name = f"{family}_{variant}"
        if only is not None and family not in only and name not in only:
            continue
        folder = os.path.join(outdir, name)
        print(f"{name}: {make.__doc__.strip()}", flush=True)
        try:
            meta = make(folder, 1000 + 10 * i)
            loss = meta.get("loss")
            results.append((name, True, f"loss {loss:.6g}" if loss is not None else "no loss"))
        except Exception as e:  # one variant failing must not stop the others
            traceback.print_exc()
            results.append((name, False, f"{type(e).__name__}: {e}"))
            shutil.rmtree(folder, ignore_errors=True)
    print()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}: fixtures in {outdir}")
    for name, ok, info in results:
        print(f"  {'ok  ' if ok else 'FAIL'} {name:40s} {info}")
    failed = sum(1 for _, ok, _ in results if not ok)
    print(f"{len(results) - failed}/{len(results)} written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
