"""Write the seeded example inputs the README names: ``weights.npy`` and ``model.onnx``.

They are committed, so the README's commands run on a fresh clone; this script is how they were
made (and ``tests/test_readme_commands.py`` checks the committed copies still equal its output).
Run: ``python examples/make_examples.py [DIR]`` (default: this folder). ``model.onnx`` needs the
``[onnx]`` extra.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

__all__ = ["onnx_model", "weights", "main"]

HERE = Path(__file__).resolve().parent


def weights(path: Path, seed: int = 0) -> None:
    """A 64 x 128 float32 weight matrix, standard normal (small enough to commit: 32 KiB)."""
    np.save(path, np.random.default_rng(seed).standard_normal((64, 128)).astype(np.float32))


def onnx_model(path: Path, seed: int = 0) -> None:
    """A conv block and a classifier with a symbolic ``batch`` and real (Laplace) weights: a stride-2
    stem, a depthwise and a pointwise conv, global pooling, a 10-class Gemm."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def init(name, shape):
        return numpy_helper.from_array(rng.laplace(size=shape).astype(np.float32), name)

    def value(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    nodes = [helper.make_node("Conv", ["image", "w1"], ["c1"], name="stem", strides=[2, 2], pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"], name="stem_relu"),
             helper.make_node("Conv", ["r1", "dw"], ["c2"], name="depthwise", pads=[1] * 4, group=32),
             helper.make_node("Conv", ["c2", "pw"], ["c3"], name="pointwise"),
             helper.make_node("GlobalAveragePool", ["c3"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc_w"], ["logits"], name="classifier", transB=1)]
    inits = [init("w1", (32, 3, 3, 3)), init("dw", (32, 1, 3, 3)), init("pw", (64, 32, 1, 1)), init("fc_w", (10, 64))]
    graph = helper.make_graph(nodes, "example", [value("image", ["batch", 3, 64, 64])], [value("logits", ["batch", 10])],
                              inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def main(out: Path = HERE) -> None:
    weights(out / "weights.npy")
    onnx_model(out / "model.onnx")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
