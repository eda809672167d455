"""int8 weights for an exported pairwise LLM graph: the ``onnx-int8`` CPU-default candidate of the prompt kinds.

The encoder recipe (``export._quantize_int8``: per-channel int8 weights of every MatMul and fused Attention
node) broke SmolLM2's PRP answers (max |dp| 0.97, Kendall tau -0.27 on its parity items). This recipe differs
where an LLM needs it:

- only ``MatMul`` nodes whose B operand is a weight (``MatMulConstBOnly``): the attention products and
  everything else stay fp32;
- the read-out stays fp32 (:func:`readout_matmuls`: the weight products nearest the graph output, e.g.
  the two label rows of a causal PRP graph or a seq2seq LM head), so the label logits are not rounded
  after the last layer;
- 7-bit weight range (``reduce_range``): on CPUs without VNNI (AVX2) ONNX Runtime's u8 x s8 kernels add
  pairs of products in int16 (``vpmaddubsw``), which saturates with full-range weights; 7 bits avoid it
  and cost little precision with per-channel scales.

Activations are quantized at run time (dynamic, per tensor). Whether the result is good enough is not
decided here: the export checks it against torch fp32 and the CPU-default rule (models/cpu_default.py)
keeps it only where its decisions agree and it is faster, on the machine that exports.
"""

from __future__ import annotations

from pathlib import Path

#: Recorded as the variant's ``quantization`` in the manifest.
LLM_INT8_METHOD = "dynamic-int8-per-channel-matmul-weights-7bit-readout-fp32"


def readout_matmuls(model) -> list[str]:
    """Names of the weight MatMul nodes nearest the graph's outputs (walking back from each output and
    stopping at the first MatMul whose B is an initializer on every path)."""
    weights = {t.name for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    found: list[str] = []
    seen: set[str] = set()
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "MatMul" and len(node.input) > 1 and node.input[1] in weights:
            found.append(node.name)
            continue
        stack.extend(node.input)
    return found


def quantize_llm_int8(src: Path, dst: Path) -> list[str]:
    """Write ``dst``: ``src`` with int8 weights (see the module docstring); returns the nodes kept fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep = readout_matmuls(onnx.load(str(src), load_external_data=False))
    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=keep,
        extra_options={"MatMulConstBOnly": True},
    )
    return keep
