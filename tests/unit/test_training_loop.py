"""The trainer's torch pieces: out-of-memory as a typed failure, the recipes' settings, one epoch loop and one
evaluation, on tiny in-memory tensors. Every test needs torch, so the module is slow as a whole (`make
test-fast` never imports it); the failures' sentences are checked without torch in test_training_failures."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from platform_core.errors import TrainerOutOfMemory, TrainingDataUnreadable
from trainer_ec2.config import TrainConfig
from trainer_ec2.image_recipes import FastConfig, SeedConfig
from trainer_ec2.loop import cpu_cores, evaluate, run_epochs, shuffled, train_one_epoch, training_run
from trainer_ec2.text_encoder import CandidateHeads, EncoderConfig, losses
from trainer_ec2.text_lstm import LstmConfig

pytestmark = pytest.mark.slow  # torch


@pytest.mark.parametrize("failure", [torch.OutOfMemoryError("CUDA out of memory"), MemoryError()])
def test_running_out_of_memory_leaves_a_training_run_as_a_typed_error(failure: BaseException) -> None:
    with pytest.raises(TrainerOutOfMemory) as caught:
        with training_run("image", 0):
            raise failure
    assert caught.value.kind == "image" and caught.value.__cause__ is failure
    assert caught.value.user_message() == "the trainer ran out of memory; try fewer or smaller images"


def test_a_failed_cpu_allocation_is_out_of_memory_too() -> None:
    with pytest.raises(TrainerOutOfMemory) as caught:
        with training_run("sentiment", 0):
            torch.empty(2**50, dtype=torch.uint8)  # 1 PiB: more than any address space, refused at once
    assert "DefaultCPUAllocator" in caught.value.detail and "shorter texts" in caught.value.user_message()


@pytest.mark.parametrize("failure", [RuntimeError("a shape mismatch"), TrainingDataUnreadable("image", "is odd")])
def test_other_failures_leave_a_training_run_unchanged(failure: BaseException) -> None:
    with pytest.raises(type(failure)) as caught:
        with training_run("image", 0):
            raise failure
    assert caught.value is failure


def test_a_training_run_uses_every_core_and_its_seed() -> None:
    with training_run("image", 3):
        drawn = torch.rand(2)
        assert torch.get_num_threads() == cpu_cores()
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.rand(2))


def test_each_recipe_keeps_its_settings_and_a_run_overrides_only_epochs_and_learning_rate() -> None:
    assert (FastConfig().epochs, FastConfig().learning_rate, FastConfig().tuned_blocks) == (4, 2.5e-3, 2)
    assert (SeedConfig().epochs, SeedConfig().learning_rate, SeedConfig().step_size) == (10, 0.01, 6)
    assert (EncoderConfig().epochs, EncoderConfig().l2_candidates) == (30, (1e-3, 1e-2, 1e-1))
    assert (LstmConfig().epochs, LstmConfig().learning_rate, LstmConfig().width) == (10, 2e-4, 128)
    run = FastConfig().for_run(TrainConfig(recipe="fast", epochs=2, learning_rate=0.5))
    assert (run.epochs, run.learning_rate, run.weight_decay) == (2, 0.5, 0.01)
    assert SeedConfig().for_run(TrainConfig(recipe="seed")) == SeedConfig()


def _separable(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=generator)
    return x, (x[:, 0] > 0).long()


def test_one_epoch_trains_and_returns_its_running_figures() -> None:
    torch.manual_seed(0)
    x, y = _separable()
    model = torch.nn.Linear(4, 2)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    steps: list[int] = []
    reports: list[tuple[int, int, dict[str, float]]] = []

    def one_epoch() -> tuple[dict[str, float], object]:
        figures = train_one_epoch(model, shuffled(x, y, 16, torch.Generator().manual_seed(1)), optimiser,
                                  after_step=lambda: steps.append(1))
        return figures, evaluate(model, [(x, y)], loss=F.cross_entropy)

    history, last = run_epochs(5, one_epoch, lambda *r: reports.append(r))
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5] and len(steps) == 5 * 4
    assert [(e, n) for e, n, _ in reports] == [(e, 5) for e in range(1, 6)]
    assert set(history[0]) == {"epoch", "train_loss", "train_accuracy"} and history[-1]["train_loss"] < 0.5
    assert last.accuracy >= 0.9 and last.predictions.shape == (64,) and isinstance(last.accuracy, float)
    with torch.no_grad():
        assert last.loss == pytest.approx(float(F.cross_entropy(model(x), y)), rel=1e-6)


def test_heads_side_by_side_are_scored_one_by_one() -> None:
    x, y = _separable(10)
    heads = CandidateHeads(4, 2, (0.1, 1.0))
    with torch.no_grad():
        heads.weight[0, 0] = torch.tensor([-1.0, 1.0])  # head 0 reads the separating feature; head 1 is blank
    scored = evaluate(heads, [(x[:6], y[:6]), (x[6:], y[6:])], loss=losses)
    assert scored.outputs.shape == (2, 10, 2) and scored.predictions.shape == (2, 10)
    assert scored.accuracy[0] == 1.0 and scored.loss.shape == (2,)
    assert heads.objective(scored.outputs, y) > scored.loss.sum()  # the penalties count in training only
