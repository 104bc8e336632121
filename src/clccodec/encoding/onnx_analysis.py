"""g_a as an ONNX graph, run by ONNX Runtime: the torch-free encoder's analysis, and `clc export-onnx`.

On the 2-core AVX-512 CPU of docs/performance.md, ONNX Runtime runs g_a about 1.6x faster than the numpy
im2col products at 768x512 and 2x at 4000x3000 (its convolutions reach the BLAS peak; numpy's strided column
copies and the 3-channel first layer do not). The synthesis gained nothing there (0.29 s
against 0.31 s at 768x512): the decoder stays numpy. onnxruntime and onnx are dependencies; where they cannot
be imported (an installation without them) the encoder runs the numpy analysis, the same network.

A graph holds a run of g_a's layers: 5x5 stride-2 convolutions and GDNs. A GDN with rate scales s computes
s x / sqrt(beta + gamma x^2) (numpy_encoder.NumpyAnalysis.gdns folds s into gamma and beta instead): s is a
graph input per GDN for the encoder, which runs every quality through one session, and a constant in an
exported file.
"""

from __future__ import annotations

import os

import numpy as np

Layer = tuple[str, np.ndarray, np.ndarray]  # ("conv", weight, bias) or ("gdn", gamma, beta)
OPSET = 17
IR_VERSION = 8  # the ONNX file format of opset 17 (ONNX 1.12): files that ONNX Runtime 1.12 and later read


def runtime():
    """The onnxruntime module, or None when it (or onnx, which builds the graphs) is not installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def graph(layers: list[Layer], scales: list[np.ndarray] | None = None, name: str = "g_a") -> bytes:
    """The serialised ONNX model of these layers: input "x" (N, C, H, W) float32, output "y".

    `scales`: None, each GDN's scale is an input "s0", "s1", ... (C, 1, 1); else one array per GDN, folded into
    the graph as a constant (ones: a plain GDN)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, inputs = [], [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, None, None])]

    def const(name: str, a: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(a, np.float32), name))
        return name

    t, k = "x", 0
    for i, (kind, p1, p2) in enumerate(layers):
        out = f"t{i}"
        if kind == "conv":
            kernel = list(p1.shape[2:])
            nodes.append(helper.make_node("Conv", [t, const(f"w{i}", p1), const(f"b{i}", p2)], [out],
                                          kernel_shape=kernel, strides=[2, 2], pads=[kernel[0] // 2] * 4))
        elif kind == "gdn":
            c = len(p2)
            norm = [helper.make_node("Mul", [t, t], [f"{out}_sq"]),
                    helper.make_node("Conv", [f"{out}_sq", const(f"gamma{i}", p1.reshape(c, c, 1, 1)),
                                              const(f"beta{i}", p2)], [f"{out}_n"], kernel_shape=[1, 1]),
                    helper.make_node("Sqrt", [f"{out}_n"], [f"{out}_r"])]
            if scales is None:
                s = f"s{k}"
                inputs.append(helper.make_tensor_value_info(s, TensorProto.FLOAT, [c, 1, 1]))
            else:
                s = const(f"s{k}", scales[k].reshape(c, 1, 1))
            nodes += norm + [helper.make_node("Mul", [t, s], [f"{out}_s"]),
                             helper.make_node("Div", [f"{out}_s", f"{out}_r"], [out])]
            k += 1
        else:
            raise ValueError(f"no ONNX form for layer kind {kind!r}")
        t = out
    nodes.append(helper.make_node("Identity", [t], ["y"]))
    g = helper.make_graph(nodes, name, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)],
                          inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="clccodec",
                              ir_version=IR_VERSION)
    return model.SerializeToString()


class OnnxLayers:
    """A run of g_a's layers in an ONNX Runtime session (scales as inputs): (C, H, W) -> (C', H', W')."""

    def __init__(self, ort, layers: list[Layer]) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # (no warnings about unused initialisers and the like on a user's terminal)
        options.enable_mem_pattern = False  # (its planned block is sized for the first band's shape: more memory)
        # no threads spinning after a run (they took the cores from the numpy work that follows)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0:  # (ONNX Runtime follows neither it nor threadpoolctl by itself:
            options.intra_op_num_threads = int(threads)  # a Ray actor's or a niced job's share of the cores)
        self.session = ort.InferenceSession(graph(layers), options, providers=["CPUExecutionProvider"])
        self.gdns = sum(kind == "gdn" for kind, _, _ in layers)

    def __call__(self, x: np.ndarray, scales: list[np.ndarray]) -> np.ndarray:
        assert len(scales) == self.gdns
        feeds = {"x": np.ascontiguousarray(x[None], np.float32)}
        feeds.update({f"s{k}": s.reshape(-1, 1, 1).astype(np.float32) for k, s in enumerate(scales)})
        return self.session.run(["y"], feeds)[0][0]

