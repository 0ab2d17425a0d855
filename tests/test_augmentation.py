"""`augmentation:` of DQN and QR-DQN (DrQ's random shift), and the drq_eps preset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from zoo.algorithms.augmentation import SHIFT_PAD, random_intensity, random_shift
from zoo.algorithms.model_loading import load_model
from zoo.config.config import build_config
from zoo.envs.stack import make_vec_env_for
from zoo.runs.checkpoints import capture_rng_states, restore_rng_states
from zoo.schema.names import AUGMENTATIONS
from zoo.training.model_setup import build_model


def _ramp_images(batch: int, channels: int = 4, side: int = 84) -> th.Tensor:
    """Images whose pixel (r, c) holds r * side + c (plus the channel), so a crop tells its
    offset; as float, since 84 * 84 does not fit in a byte."""
    grid = th.arange(side * side, dtype=th.float32).view(1, 1, side, side)
    return (grid + th.arange(channels, dtype=th.float32).view(1, channels, 1, 1)).expand(
        batch, channels, side, side
    )


def _offsets(shifted: th.Tensor, side: int = 84) -> list[tuple[int, int]]:
    """(row, column) shift of each image, read at an interior pixel, checked everywhere
    inside the border the shift repeats."""
    found = []
    for image in shifted:
        value = int(image[0, 42, 42])
        dr, dc = value // side - 42, value % side - 42
        interior = image[0, SHIFT_PAD:-SHIFT_PAD, SHIFT_PAD:-SHIFT_PAD]
        rows = th.arange(SHIFT_PAD, side - SHIFT_PAD).view(-1, 1) + dr
        cols = th.arange(SHIFT_PAD, side - SHIFT_PAD).view(1, -1) + dc
        assert th.equal(interior, (rows * side + cols).float())
        found.append((dr, dc))
    return found


def test_random_shift_moves_each_image_by_at_most_4_pixels_with_every_offset_drawn() -> None:
    th.manual_seed(0)
    images = _ramp_images(2000)
    offsets = _offsets(random_shift(images))
    drawn = {offset for offset in offsets}
    every = {
        (r, c) for r in range(-SHIFT_PAD, SHIFT_PAD + 1) for c in range(-SHIFT_PAD, SHIFT_PAD + 1)
    }
    assert drawn == every  # 81 offsets, -4..+4 each way, and nothing else


def test_random_shift_repeats_the_border_and_moves_stacked_frames_together() -> None:
    th.manual_seed(1)
    images = _ramp_images(64)
    shifted = random_shift(images)
    assert shifted.shape == images.shape and shifted.dtype == th.float32
    for image, (dr, dc) in zip(shifted, _offsets(shifted), strict=True):
        # The frames of one stack keep their differences: they moved together.
        assert th.equal(image - image[0], th.arange(4.0).view(4, 1, 1).expand_as(image))
        # Edge rows/columns outside the image repeat its border (replication padding).
        top = image[0, 0]
        assert int(top[42]) // 84 == max(0 + dr, 0)
        left = image[0, :, 0]
        assert int(left[42]) % 84 == max(0 + dc, 0)


def test_random_shift_of_bytes_matches_a_padded_crop() -> None:
    th.manual_seed(2)
    images = th.randint(0, 256, (16, 4, 84, 84), dtype=th.uint8)
    state = th.get_rng_state()
    shifted = random_shift(images)
    th.set_rng_state(state)
    offsets = th.randint(-SHIFT_PAD, SHIFT_PAD + 1, (16, 2)) + SHIFT_PAD
    padded = th.nn.functional.pad(images.float(), (SHIFT_PAD,) * 4, mode="replicate")
    for image, crop, (r, c) in zip(padded, shifted, offsets.tolist(), strict=True):
        assert th.equal(crop, image[:, r : r + 84, c : c + 84])


def test_random_intensity_scales_each_image_within_10_percent() -> None:
    th.manual_seed(3)
    images = th.full((500, 4, 84, 84), 100.0)
    scaled = random_intensity(images)
    factors = scaled[:, 0, 0, 0] / 100
    assert th.all((factors >= 0.9 - 1e-6) & (factors <= 1.1 + 1e-6))
    assert th.equal(scaled, factors.view(-1, 1, 1, 1) * images)  # one factor per image
    assert factors.std() > 0.03


@pytest.fixture(scope="module")
def drq_model() -> object:
    """The drq_eps preset on Breakout after 4 updates (shared: building one takes seconds)."""
    return _drq_model()


def _drq_model(*overrides: str) -> object:
    config = build_config(
        "dqn",
        "Breakout",
        preset="drq_eps",
        overrides=["buffer_size=400", "learning_starts=100", *overrides],
    )
    env = make_vec_env_for(config.env, config.env_settings(), 0)
    model = build_model(config, env, "cpu")
    model.learn(104)  # 4 updates: a buffer to sample and a model that has trained
    return model


def _batch(model: object) -> ReplayBufferSamples:
    np.random.seed(0)
    batch = model.replay_buffer.sample(32)  # type: ignore[attr-defined]
    # The same stacks as observations and as next observations: only the draws differ.
    return batch._replace(next_observations=batch.observations)


@pytest.mark.parametrize("augmentation", AUGMENTATIONS)
def test_the_update_augments_obs_and_next_obs_with_their_own_draws(
    tmp_path: Path, augmentation: str
) -> None:
    model = _drq_model(f"augmentation={augmentation}")
    batch = _batch(model)
    augmented = model.augmented(batch)  # type: ignore[attr-defined]
    assert augmented.observations.shape == batch.observations.shape
    assert not th.equal(augmented.observations, augmented.next_observations)
    assert not th.equal(augmented.observations, batch.observations.float())
    # Actions, rewards and dones are the batch's own.
    assert augmented.actions is batch.actions and augmented.rewards is batch.rewards
    # The draws come from PyTorch's generator, which checkpoints save: a resume repeats them.
    states = capture_rng_states()
    again = model.augmented(batch)  # type: ignore[attr-defined]
    restore_rng_states(states)
    assert th.equal(model.augmented(batch).observations, again.observations)  # type: ignore[attr-defined]


def test_without_augmentation_the_batch_is_untouched() -> None:
    model = _drq_model("augmentation=null")
    batch = _batch(model)
    state = th.get_rng_state()
    assert model.augmented(batch) is batch  # type: ignore[attr-defined]
    assert th.equal(th.get_rng_state(), state)  # and no random number drawn


def test_the_augmentation_is_saved_with_the_model(tmp_path: Path, drq_model: object) -> None:
    model = drq_model
    model.save(tmp_path / "model.zip")  # type: ignore[attr-defined]
    loaded = load_model(tmp_path / "model.zip", device="cpu")
    assert loaded.augmentation == "random_shift_intensity"  # type: ignore[attr-defined]


def test_drq_eps_is_dopamines_configuration(drq_model: object) -> None:
    model = drq_model
    config = build_config("dqn", "Breakout", preset="drq_eps")
    assert config.hyperparams["learning_starts"] == 1600 and config.n_timesteps == 100_000
    assert config.evaluation.epsilon == 0.001 and config.evaluation.episodes == 100
    assert model.n_steps == 10 and model.batch_size == 32 and model.gamma == 0.99  # type: ignore[attr-defined]
    assert model.double_q and model.dueling and model.max_grad_norm is None  # type: ignore[attr-defined]
    optimizer = model.policy.optimizer  # type: ignore[attr-defined]
    assert isinstance(optimizer, th.optim.Adam)
    assert optimizer.param_groups[0]["eps"] == 1.5e-4 and optimizer.param_groups[0]["lr"] == 1e-4
    epsilon = model.epsilon_schedule  # type: ignore[attr-defined]
    # Dopamine's linearly_decaying_epsilon: 1 until min_replay_history, then 5,000 steps down.
    assert epsilon.value(1599) == 1.0 and epsilon.value(1600) == 1.0
    assert epsilon.value(4100) == pytest.approx(0.505) and epsilon.value(6600) == pytest.approx(
        0.01
    )


# Interval 2: the first update finds the copy of step 100 untouched by any update since.
@pytest.mark.parametrize(
    ("interval", "shortcuts"), [(1, [True] * 6), (2, [True, True, False, True, False, True])]
)
def test_the_update_asks_the_online_network_for_targets_only_when_the_target_holds_its_weights(
    interval: int, shortcuts: list[bool]
) -> None:
    """SB3 copies the online weights to the target after each step (interval 1, drq_eps) or
    every other step: the update takes the online network as the target exactly after a
    copy, and the targets it gets are the target network's, bit for bit."""
    config = build_config(
        "dqn",
        "Breakout",
        preset="drq_eps",
        overrides=["buffer_size=400", "learning_starts=100", f"target_update_interval={interval}"],
    )
    env = make_vec_env_for(config.env, config.env_settings(), 0)
    model = build_model(config, env, "cpu")
    seen: list[bool] = []
    own = model._values_and_targets  # type: ignore[attr-defined]

    def checked(batch: ReplayBufferSamples) -> tuple[th.Tensor, th.Tensor]:
        seen.append(model.online_as_target)  # type: ignore[attr-defined]
        result = own(batch)
        model.online_as_target = False  # type: ignore[attr-defined]
        state = capture_rng_states()
        assert all(th.equal(a, b) for a, b in zip(result, own(batch), strict=True))
        restore_rng_states(state)
        return result

    model._values_and_targets = checked  # type: ignore[attr-defined]
    model.learn(106)
    assert seen == shortcuts
