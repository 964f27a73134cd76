"""Training failures without torch: every typed failure says its own sentence, anything else a generic one,
and a dataset needs two classes of enough examples."""
from __future__ import annotations

import pytest

from platform_core.errors import (MlbotError, OnnxMismatch, TooFewExamples, TrainerOutOfMemory,
                                  TrainingDataUnreadable, TrainingError)
from trainer_ec2.failures import failure_reason
from trainer_ec2.splits import MIN_CLASSES, require_classes


def test_every_training_failure_says_its_own_sentence_and_others_a_generic_one() -> None:
    typed = [TrainerOutOfMemory("sentiment"), TrainingDataUnreadable("image", "is not a readable zip (x)"),
             TooFewExamples("sentiment", 1, 5, 2, 2), OnnxMismatch(0.02, 1e-3)]
    for error in typed:
        assert isinstance(error, TrainingError) and isinstance(error, MlbotError)
        assert failure_reason(error) == error.user_message() and "{" not in error.user_message()
    assert "1 class(es), the smallest with 5" in typed[2].user_message()
    assert "2.0e-02" in typed[3].user_message() and typed[3].difference == 0.02
    assert failure_reason(MemoryError(), "sentiment") == TrainerOutOfMemory("sentiment").user_message()
    assert failure_reason(KeyError("x")).startswith("training stopped on an internal error (KeyError)")


def test_a_dataset_needs_two_classes_of_enough_examples() -> None:
    require_classes("image", [1, 1])
    with pytest.raises(TooFewExamples) as caught:
        require_classes("sentiment", [5, 1], min_per_class=2)
    assert (caught.value.classes, caught.value.smallest, caught.value.min_classes) == (2, 1, MIN_CLASSES)
    with pytest.raises(TooFewExamples):
        require_classes("image", [])
