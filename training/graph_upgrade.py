"""Rewrites exported models to run faster with the same outputs, so models trained before a speed-up (the
committed ones, a user's own) need no retraining (`kfashion models upgrade`).

One rewrite so far, the colour histogram of the pooled backbone (training.backbone.ColourHistogram):
models exported before 2026-12-01 compute each pixel's squared distance to every palette colour, a
(N, pixels, palette, 3) tensor, then softmax(-distance / T). The rewrite gives that softmax
(2 pixel.colour - |colour|^2) / T instead, one MatMul and one Add with weights from the model's own palette
and temperature: |pixel|^2 is the same for every colour and drops out of the softmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shared.manifest import load_manifest, outputs_sha256, sha256_of, write_manifest
from shared.runtime import onnx_session
from training.backbone import HISTOGRAM_TEMPERATURE, ColourHistogram, palette_colours

# The distance chain as torch exported it, from the pixels (N, P, 3) to the softmax's input.
DISTANCE_CHAIN = ("Unsqueeze", "Sub", "Pow", "ReduceSum", "Neg", "Div")
MAX_DIFFERENCE = 1e-4  # largest change of any output allowed on the check crops


class DistanceHistogram(ColourHistogram):
    """The histogram as models before 2026-12-01 compute it, kept to test the rewrite and to measure it
    (bench.colour_histogram): softmax over the squared distances themselves."""

    def __init__(self):
        super().__init__()
        self.register_buffer("palette", palette_colours())

    def shares(self, pixels: torch.Tensor) -> torch.Tensor:
        distance = (pixels.unsqueeze(2) - self.palette.view(1, 1, -1, 3)).pow(2).sum(-1)
        return torch.softmax(-distance / HISTOGRAM_TEMPERATURE, dim=-1)


@dataclass
class Upgrade:
    model: str
    status: str  # "rewritten", "current" (nothing to rewrite) or "refused" (the rewrite moved an output)
    difference: float = 0.0  # largest change of any output on the check crops


def _constant(graph, name: str) -> np.ndarray:
    from onnx import numpy_helper

    for initializer in graph.initializer:
        if initializer.name == name:
            return numpy_helper.to_array(initializer)
    for node in graph.node:
        if node.op_type == "Constant" and name in node.output:
            return numpy_helper.to_array(node.attribute[0].t)
    raise KeyError(name)


def _distance_chain(producer: dict, softmax) -> list | None:
    """The nodes of DISTANCE_CHAIN feeding `softmax`, in order, or None if its input is computed otherwise;
    `producer`: the node writing each tensor."""
    chain, tensor = [], softmax.input[0]
    for op in reversed(DISTANCE_CHAIN):
        node = producer.get(tensor)
        if node is None or node.op_type != op:
            return None
        chain.append(node)
        tensor = node.input[0]
    return chain[::-1]


def rewrite_histogram(model) -> bool:
    """Replaces each distance chain feeding a softmax in `model` (an onnx.ModelProto, changed in place) with a
    MatMul and an Add where the chain began; False (nothing changed) when the model has none."""
    from onnx import helper, numpy_helper

    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    chains = [
        (softmax, chain)
        for softmax in graph.node
        if softmax.op_type == "Softmax" and (chain := _distance_chain(producer, softmax))
    ]
    if not chains:
        return False
    replaced, replacements = set(), {}
    for index, (softmax, chain) in enumerate(chains):
        unsqueeze, sub, *_, div = chain
        palette = _constant(graph, sub.input[1]).reshape(-1, 3).astype(np.float32)
        temperature = float(_constant(graph, div.input[1]))
        prefix = f"{softmax.name.rsplit('/', 1)[0]}/palette_{index}"
        weight = numpy_helper.from_array((2 * palette / temperature).T.copy(), f"{prefix}_weight")
        bias = numpy_helper.from_array(-(palette**2).sum(1) / temperature, f"{prefix}_bias")
        graph.initializer.extend([weight, bias])
        replaced.update(id(node) for node in chain)
        replacements[id(unsqueeze)] = [
            helper.make_node(
                "MatMul", [unsqueeze.input[0], weight.name], [f"{prefix}_product"], f"{prefix}_MatMul"
            ),
            helper.make_node("Add", [f"{prefix}_product", bias.name], [softmax.input[0]], f"{prefix}_Add"),
        ]
    nodes = []
    for node in graph.node:  # the MatMul and Add where the chain's first node was, in topological order
        if id(node) in replacements:
            nodes.extend(replacements[id(node)])
        elif id(node) not in replaced:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused(graph)
    return True


def _drop_unused(graph) -> None:
    """Removes the initializers and Constant nodes nothing reads any more."""
    while True:
        read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.op_type == "Constant" and not set(n.output) & read]
        for node in dead:
            graph.node.remove(node)
        unused = [i for i in graph.initializer if i.name not in read]
        for initializer in unused:
            graph.initializer.remove(initializer)
        if not dead and not unused:
            return


def upgrade_models(models_dir: Path, check_crops: int = 4) -> list[Upgrade]:
    """Rewrites every model of the folder that holds the old histogram, after checking on random crops that
    no output changes by more than MAX_DIFFERENCE (a model that would is refused and left as it was); each
    file and then the manifest (sha256, size, the file it was rewritten from) are replaced whole."""
    import onnx

    manifest = load_manifest(models_dir)
    done = []
    for name, entry in manifest.models.items():
        path = models_dir / entry.file
        model = onnx.load(str(path))
        if not rewrite_histogram(model):
            done.append(Upgrade(name, "current"))
            continue
        onnx.checker.check_model(model)
        shape = [check_crops if isinstance(d, str) else d for d in entry.inputs[0].shape]
        feed = {entry.inputs[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        before = onnx_session(path).run(None, feed)
        after = onnx_session(model.SerializeToString()).run(None, feed)
        difference = max(float(np.abs(a - b).max()) for a, b in zip(before, after, strict=True))
        if difference > MAX_DIFFERENCE:
            done.append(Upgrade(name, "refused", difference))
            continue
        written = path.with_name(f"{path.name}.upgrading")
        onnx.save(model, str(written))
        written.replace(path)
        entry.verification["rewritten_from"] = {
            "sha256": outputs_sha256(entry),
            "rewrite": "colour histogram as a matrix product",
            "max_output_difference": difference,
        }
        entry.sha256, entry.bytes = sha256_of(path), path.stat().st_size
        done.append(Upgrade(name, "rewritten", difference))
    if any(upgrade.status == "rewritten" for upgrade in done):
        write_manifest(models_dir, manifest)
    return done
