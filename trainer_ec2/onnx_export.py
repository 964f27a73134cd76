"""Export a torch module to one self-contained ONNX file (bytes) and check it against torch.

The legacy TorchScript exporter (``dynamo=False``) writes a single file in well under a second; the
default dynamo exporter needs onnxscript and splits weights into a ``.onnx.data`` side file.
"""
from __future__ import annotations

import io
import os
import warnings
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import numpy as np
import onnxruntime as ort
import torch

OPSET = 17


class OnnxMismatch(RuntimeError):
    """The exported graph disagrees with the torch model beyond the tolerance."""

    def __init__(self, difference: float, tolerance: float) -> None:
        self.difference, self.tolerance = difference, tolerance
        super().__init__(f"ONNX and torch probabilities differ by {difference:.2e} (tolerance {tolerance:.0e})")


@contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode inside; afterwards every submodule's own mode back (frozen BatchNorm stays frozen)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        for m, training in modes:
            m.training = training


def export_onnx(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor], input_names: Sequence[str],
                output_names: Sequence[str], *, dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
                opset: int = OPSET) -> bytes:
    """The module (in eval mode) as ONNX bytes; axis 0 of every input and output is a dynamic batch.

    ``dynamic_axes`` adds more (e.g. ``{"input_ids": {1: "sequence"}}``) per input or output name.
    """
    if len(example_inputs) != len(input_names):
        raise ValueError("one name per example input")
    axes = {name: {0: "batch", **(dynamic_axes or {}).get(name, {})} for name in [*input_names, *output_names]}
    out = io.BytesIO()
    with evaluating(module), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is deprecated, and chosen
        torch.onnx.export(module, tuple(example_inputs), out, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True, dynamo=False)
    return out.getvalue()


def cpu_cores() -> int:
    """The cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def session(onnx_bytes: bytes, threads: int | None = None) -> ort.InferenceSession:
    """A CPU onnxruntime session over the bytes, using ``threads`` (default: all cores) per operator."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or cpu_cores()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def run_batched(sess: ort.InferenceSession, inputs: dict[str, np.ndarray], batch_size: int = 32) -> np.ndarray:
    """The first output of ``sess`` over ``inputs``, fed in slices of ``batch_size`` along axis 0."""
    n = len(next(iter(inputs.values())))
    parts = [sess.run(None, {k: v[i:i + batch_size] for k, v in inputs.items()})[0]
             for i in range(0, n, batch_size)]
    return np.concatenate(parts)


def max_probability_difference(onnx_bytes: bytes, torch_module: torch.nn.Module, inputs: dict[str, np.ndarray],
                               batch_size: int = 32) -> float:
    """Largest absolute difference between onnxruntime's and torch's first output on the same inputs."""
    return compare(onnx_bytes, torch_module, inputs, batch_size)[0]


def compare(onnx_bytes: bytes, torch_module: torch.nn.Module, inputs: dict[str, np.ndarray],
            batch_size: int = 32) -> tuple[float, np.ndarray]:
    """(largest |onnxruntime - torch| of the first output, onnxruntime's outputs) on the same inputs.

    ``inputs`` maps the graph's input names to arrays (float32, int64 ...) passed positionally to the
    module in that order; both sides run in batches of ``batch_size``.
    """
    sess = session(onnx_bytes)
    expected = [i.name for i in sess.get_inputs()]
    if sorted(expected) != sorted(inputs):
        raise ValueError(f"the graph takes {expected}, given {sorted(inputs)}")
    ordered = {name: inputs[name] for name in expected}
    onnx_out = run_batched(sess, ordered, batch_size)
    n = len(onnx_out)
    if not n:
        return 0.0, onnx_out
    with evaluating(torch_module):
        torch_out = np.concatenate([
            torch_module(*(torch.from_numpy(np.ascontiguousarray(v[i:i + batch_size])) for v in ordered.values()))
            .numpy() for i in range(0, n, batch_size)])
    return float(np.max(np.abs(onnx_out.astype(np.float64) - torch_out.astype(np.float64)))), onnx_out
