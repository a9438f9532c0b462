"""`"auto"` hyperparameters and the loop's batching arithmetic."""

from __future__ import annotations

from localft.training.auto import BASE_LEARNING_RATE, resolve, within_positions
from localft.training.hparams import Hyperparameters
from localft.training.loop import epoch_order, steps_per_epoch


def test_auto_follows_openai_epochs_and_family_defaults() -> None:
    hp = resolve(Hyperparameters(), "causal_lm", n_examples=1000)
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (3, 8, 1.0)
    assert hp.learning_rate == BASE_LEARNING_RATE["causal_lm"] and hp.max_length == 512
    assert resolve(Hyperparameters(), "causal_lm", n_examples=20).n_epochs == 5  # small files get more epochs
    assert resolve(Hyperparameters(), "causal_lm", n_examples=20).batch_size == 2  # ~10 steps per epoch
    assert resolve(Hyperparameters(), "encoder", n_examples=1000).batch_size == 16


def test_encoders_get_epochs_for_enough_steps() -> None:
    """Encoders: epochs adding up to `MIN_ENCODER_STEPS` (80) optimizer steps, within 1 to 10."""
    small = resolve(Hyperparameters(), "encoder", n_examples=100)  # batch 10: 10 steps an epoch
    assert (small.batch_size, small.n_epochs) == (10, 8)
    assert resolve(Hyperparameters(), "encoder", n_examples=600).n_epochs == 3  # 38 steps an epoch
    assert resolve(Hyperparameters(), "encoder", n_examples=770).n_epochs == 2  # 49 steps an epoch
    assert resolve(Hyperparameters(), "encoder", n_examples=2000).n_epochs == 1  # 125 steps in one pass
    assert resolve(Hyperparameters(), "encoder", n_examples=2).n_epochs == 10  # at most 10, however small
    assert resolve(Hyperparameters(), "causal_lm", n_examples=600).n_epochs == 3  # LLMs keep OpenAI's rule


def test_explicit_values_win_and_scale_the_base_rate() -> None:
    chosen = Hyperparameters(n_epochs=1, batch_size=32, learning_rate_multiplier=0.5, max_length=128)
    hp = resolve(chosen, "encoder", 1000)
    assert (hp.n_epochs, hp.batch_size, hp.max_length) == (1, 32, 128)
    assert hp.learning_rate == BASE_LEARNING_RATE["encoder"] * 0.5
    assert resolve(Hyperparameters(batch_size=64), "encoder", 10).batch_size == 10  # never more than the data


def test_max_length_is_cut_to_the_models_positions() -> None:
    asked = resolve(Hyperparameters(max_length=1024), "encoder", 100)
    assert within_positions(asked, 512).max_length == 512  # MiniLM has 512 positions
    assert within_positions(asked, 8192) == asked and within_positions(asked, None) == asked


def test_epoch_order_depends_only_on_seed_and_epoch() -> None:
    assert epoch_order(50, 1, 0) == epoch_order(50, 1, 0)
    assert epoch_order(50, 1, 0) != epoch_order(50, 1, 1) and sorted(epoch_order(50, 2, 3)) == list(range(50))
    assert steps_per_epoch(36, 8) == 5
