"""The training kernels are exact substitutes: same masks in distribution, same attention, same gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from localft.training import kernels
from localft.training.kernels import (
    FAST_EAGER,
    FastDropout,
    attention_for_width,
    fast_dropout,
    fast_eager_attention,
    keep_mask,
    use_fast_dropout,
)


@pytest.mark.parametrize("p", [0.1, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_mask_drops_each_element_with_probability_p_and_rescales_the_rest(p: float, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    mask = keep_mask(torch.empty(500_000, dtype=dtype), p)
    assert mask.dtype == dtype and mask.shape == (500_000,)
    dropped = (mask == 0).float().mean().item()
    assert abs(dropped - p) < 0.004  # about 6 standard deviations at 500k draws
    assert set(mask.unique().tolist()) == {0.0, torch.tensor(1 / (1 - p), dtype=dtype).item()}
    assert abs(mask.float().mean().item() - 1.0) < 0.01  # the expectation is kept


def test_the_mask_follows_torchs_seed_and_uses_every_bit() -> None:
    like = torch.empty(4, 1001)  # not a multiple of the four draws per random word
    torch.manual_seed(7)
    first = keep_mask(like, 0.25)
    torch.manual_seed(7)
    assert torch.equal(keep_mask(like, 0.25), first)
    assert not torch.equal(keep_mask(like, 0.25), first)
    # Each of the four 16-bit slices of a word is uniform: none of them drops far more or less than p.
    torch.manual_seed(0)
    slices = (keep_mask(torch.empty(400_000), 0.5) == 0).view(-1, 4).float().mean(0)
    assert ((slices - 0.5).abs() < 0.01).all(), slices


def test_fast_dropout_backpropagates_through_the_mask_it_drew() -> None:
    x = torch.randn(64, 33, requires_grad=True)
    y = fast_dropout(x, 0.3, training=True)
    y.backward(torch.ones_like(y))
    assert x.grad is not None
    mask = x.grad
    torch.testing.assert_close(y, x.detach() * mask)
    assert set(mask.unique().tolist()) == pytest.approx([0.0, 1 / 0.7])


def test_fast_dropout_is_the_identity_when_not_training_or_p_is_zero() -> None:
    x = torch.randn(10, 10)
    assert fast_dropout(x, 0.5, training=False) is x
    assert fast_dropout(x, 0.0, training=True) is x
    assert torch.equal(fast_dropout(x, 1.0, training=True), torch.zeros_like(x))


def test_every_dropout_module_is_swapped_and_keeps_its_probability(tiny_encoder: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3)
    before = [m.p for m in model.modules() if type(m) is nn.Dropout]
    assert use_fast_dropout(model) == len(before) > 0
    assert [m.p for m in model.modules() if isinstance(m, FastDropout)] == before
    assert not any(type(m) is nn.Dropout for m in model.modules())


def _attention_inputs(heads: int, kv_heads: int) -> tuple[torch.Tensor, ...]:
    """Queries, keys and values laid out as the models make them (a projection's output viewed per head and
    transposed, so not contiguous), with gradients."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 9, n, 16).transpose(1, 2).requires_grad_() for n in (heads, kv_heads, kv_heads))
    return q, k, v


def _padding_mask(heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch whose second row is padded after 6 tokens: the boolean mask and the additive one, for every head (4D
    with one head row broadcast, as the models pass it, or one row per head)."""
    keep = torch.ones(3, 9, dtype=torch.bool)
    keep[1, 6:] = False
    additive = torch.zeros(3, 1, 9, 9).masked_fill(~keep[:, None, None, :], torch.finfo(torch.float32).min)
    return keep, additive if heads == 1 else additive.expand(3, heads, 9, 9).contiguous()


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 2), (4, 1)])
@pytest.mark.parametrize("mask_heads", [1, 4])
def test_fast_eager_attention_computes_what_sdpa_does(heads: int, kv_heads: int, mask_heads: int) -> None:
    """Outputs and gradients, grouped-query attention included (queries stacked per key/value head instead of the
    keys and values repeated per query head)."""
    q, k, v = _attention_inputs(heads, kv_heads)
    keep, additive = _padding_mask(mask_heads)
    module = nn.Module().eval()
    out, weights = fast_eager_attention(module, q, k, v, additive, scaling=0.3)
    groups = heads // kv_heads
    expected = F.scaled_dot_product_attention(
        q, k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1), attn_mask=keep[:, None, None, :], scale=0.3
    ).transpose(1, 2)
    torch.testing.assert_close(out, expected)
    assert weights.shape == (3, heads, 9, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, heads, 9))
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, (q, k, v), grad)
    theirs = torch.autograd.grad(expected, (q, k, v), grad)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_fast_eager_attention_caps_the_scores_where_the_model_asks() -> None:
    """Gemma 2's soft cap (`softcap`): tanh(scores / cap) * cap before the mask, as transformers' eager attention."""
    q, k, v = _attention_inputs(4, 2)
    _, additive = _padding_mask(1)
    scores = torch.matmul(q, k.repeat_interleave(2, 1).transpose(2, 3)) * 0.3
    capped = torch.tanh(scores / 5.0) * 5.0 + additive
    expected = torch.matmul(torch.softmax(capped, -1), v.repeat_interleave(2, 1)).transpose(1, 2)
    out, _ = fast_eager_attention(nn.Module().eval(), q, k, v, additive, scaling=0.3, softcap=5.0)
    torch.testing.assert_close(out, expected)
    uncapped, _ = fast_eager_attention(nn.Module().eval(), q, k, v, additive, scaling=0.3)
    assert not torch.allclose(uncapped, expected)  # the cap matters at these scores


def test_a_row_with_no_key_to_attend_to_stays_finite_in_bf16() -> None:
    """Padded positions of a sliding-window layer mask every key (fp32's lowest value, which is -inf in bf16): their
    output must not be NaN, or the next layer spreads it to every position."""
    q, k, v = (t.detach().bfloat16() for t in _attention_inputs(4, 2))
    _, additive = _padding_mask(1)
    additive[1, :, 7, :] = torch.finfo(torch.float32).min  # row 1's query 7 sees no key
    out, weights = fast_eager_attention(nn.Module().eval(), q, k, v, additive, scaling=0.3)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()


def _padded_batch(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(5, vocab, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    mask[2, 3:] = 0
    return ids, mask


def test_a_short_pass_of_the_encoder_gives_the_logits_of_its_default_attention(tiny_encoder: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3).eval()
    ids, mask = _padded_batch(model.config.vocab_size)
    with torch.no_grad():
        default = model(input_ids=ids, attention_mask=mask).logits
        with attention_for_width(model, ids.shape[1]):
            assert model.config._attn_implementation == FAST_EAGER
            short = model(input_ids=ids, attention_mask=mask).logits
    assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(short, default)


def test_a_short_pass_of_the_llm_gives_the_logits_of_its_default_attention(tiny_causal_lm: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    ids, mask = _padded_batch(model.config.vocab_size)
    with torch.no_grad():
        default = model(input_ids=ids, attention_mask=mask).logits
        with attention_for_width(model, ids.shape[1]):
            assert model.config._attn_implementation == FAST_EAGER
            short = model(input_ids=ids, attention_mask=mask).logits
    keep = mask.bool()  # padded positions are never read
    torch.testing.assert_close(short[keep], default[keep])


def test_only_short_passes_switch_and_the_default_comes_back_after_an_error(
    tiny_causal_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    monkeypatch.setattr(kernels, "EAGER_MAX_WIDTH", 100)
    with attention_for_width(model, 101):
        assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError), attention_for_width(model, 100):
        assert model.config._attn_implementation == FAST_EAGER
        raise RuntimeError("a failed pass")
    assert model.config._attn_implementation == "sdpa"


def test_training_passes_through_compiled_layers_run_eager_attention_up_to_their_own_width(
    tiny_causal_lm: Path,
) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    widest = kernels.COMPILED_EAGER_MAX_WIDTH
    assert widest > kernels.EAGER_MAX_WIDTH
    with attention_for_width(model, widest, compiled=True):
        assert model.config._attn_implementation == FAST_EAGER
    with attention_for_width(model, widest + 1, compiled=True):
        assert model.config._attn_implementation == "sdpa"
    # Passes without gradients do not go through the compiled layers: the uncompiled limit holds for them.
    with torch.no_grad(), attention_for_width(model, widest, compiled=True):
        assert model.config._attn_implementation == "sdpa"
    with attention_for_width(model, widest):
        assert model.config._attn_implementation == "sdpa"


def test_a_model_off_the_cpu_keeps_its_own_attention_and_dropout(tiny_encoder: Path) -> None:
    """The kernels were measured on CPUs; on another device (here `meta`, standing in for a GPU) nothing changes."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3).to("meta")
    assert use_fast_dropout(model) == 0
    with attention_for_width(model, 8):
        assert model.config._attn_implementation == "sdpa"
