"""Export a torch module to one self-contained ONNX file (bytes), and check the graph against torch.

The legacy TorchScript exporter (``dynamo=False``) writes a single file in well under a second; the
default dynamo exporter needs onnxscript and splits weights into a ``.onnx.data`` side file. Every recipe
exports through ``export_checked``: a graph that disagrees with its torch model is never stored.
"""
from __future__ import annotations

import io
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import onnxruntime as ort
import torch

from platform_core.errors import OnnxMismatch
from trainer_ec2.loop import cpu_cores

OPSET = 17
TOLERANCE = 1e-3  # largest allowed |onnxruntime - torch| class probability on the validation set
OUTPUT_NAME = "probabilities"


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
        # The legacy exporter is deprecated (and chosen), and its tracer notes (LSTM batch sizes, Python
        # values in the trace) are known; export_checked is what vouches for the graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(example_inputs), out, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True, dynamo=False)
    return out.getvalue()


def chained(first: bytes, second: bytes) -> bytes:
    """One graph that feeds ``first``'s one output to ``second``'s one input of the same name: ``first``'s input
    and ``second``'s output, nothing re-exported (``second``'s inner names get a prefix, so none collide)."""
    import onnx
    from onnx import compose

    head = onnx.load_model_from_string(first)
    tail = compose.add_prefix(onnx.load_model_from_string(second), "then/", rename_inputs=False,
                              rename_outputs=False)
    link = head.graph.output[0].name
    if [i.name for i in tail.graph.input] != [link]:
        raise ValueError(f"the second graph does not take {link!r} alone")
    return compose.merge_models(head, tail, io_map=[(link, link)]).SerializeToString()


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


def max_difference(onnx_bytes: bytes, module: torch.nn.Module, inputs: dict[str, np.ndarray], *,
                   reference: np.ndarray | None = None, whole_sample: int | None = None,
                   batch_size: int = 32) -> tuple[float, np.ndarray]:
    """(largest |onnxruntime - torch| of the first output, the probabilities to keep) over ``inputs``.

    ``inputs`` maps the graph's input names to arrays (float32, int64 ...), passed positionally to the module
    in the graph's order; both sides run in batches of ``batch_size``. Without ``reference`` the module runs
    on every input and the graph's outputs are kept. With one (the recipe's own float32 torch outputs, a row
    for at least every input) the graph is compared with it, the whole module runs on the first
    ``whole_sample`` inputs only (covering what the reference came through onnxruntime for), and the
    reference is kept.
    """
    sess = session(onnx_bytes)
    expected = [i.name for i in sess.get_inputs()]
    if sorted(expected) != sorted(inputs):
        raise ValueError(f"the graph takes {expected}, given {sorted(inputs)}")
    ordered = {name: inputs[name] for name in expected}
    graph = run_batched(sess, ordered, batch_size)
    if not len(graph):
        return 0.0, graph
    n = len(graph) if reference is None or whole_sample is None else min(len(graph), whole_sample)
    with evaluating(module):
        torch_out = np.concatenate([
            module(*(torch.from_numpy(np.ascontiguousarray(v[i:i + batch_size])) for v in ordered.values()))
            .numpy() for i in range(0, n, batch_size)])
    difference = _largest_gap(graph[:n], torch_out)
    if reference is None:
        return difference, graph
    return max(difference, _largest_gap(graph, reference[:len(graph)])), reference


def _largest_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


@dataclass(frozen=True)
class CheckedGraph:
    """An exported graph that reproduces its torch model within TOLERANCE."""

    onnx_model: bytes
    difference: float  # the largest |onnxruntime - torch| class probability found
    probabilities: np.ndarray  # on the check's inputs (the validation set): calibration and mistakes use them


def export_checked(module: torch.nn.Module, inputs: dict[str, np.ndarray], *,
                   example: Sequence[torch.Tensor] | None = None,
                   dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
                   reference: np.ndarray | None = None, whole_sample: int | None = None,
                   batch_size: int = 32, graph: bytes | None = None) -> CheckedGraph:
    """``module`` (preprocessed inputs -> probabilities) as ONNX, checked against torch on ``inputs``.

    The graph's inputs are named as ``inputs``' keys, in the module's argument order, and its output
    ``probabilities``; the exporter traces ``example`` (default: the first two rows of every input), unless
    ``graph`` is given, built by the recipe (``chained``): it is checked all the same. The check is
    ``max_difference``'s; beyond TOLERANCE it raises OnnxMismatch.
    """
    names = list(inputs)
    if example is None:
        example = [torch.from_numpy(inputs[name][:2]) for name in names]
    if graph is None:
        graph = export_onnx(module, example, names, [OUTPUT_NAME], dynamic_axes=dynamic_axes)
    difference, probabilities = max_difference(graph, module, inputs, reference=reference,
                                               whole_sample=whole_sample, batch_size=batch_size)
    if not difference < TOLERANCE:
        raise OnnxMismatch(difference, TOLERANCE)
    return CheckedGraph(graph, difference, probabilities)
