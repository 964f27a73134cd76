"""Dataset validation: image zips and sentiment CSVs, checked before anything is stored."""
from platform_core.validation.detect import validate_dataset
from platform_core.validation.report import DatasetKind, Problem, ValidationReport

__all__ = ["validate_dataset", "DatasetKind", "Problem", "ValidationReport"]
