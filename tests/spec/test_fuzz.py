"""Document fuzzer: random and mutated spec JSON documents never raise anything but onespec's
errors (``parse_spec``: ``SpecError`` with pydantic's ``ValidationError`` as its cause) and never
take over 5 s. ``ONESPEC_FUZZ_DOCS`` sets the count (``make fuzz`` runs 100,000)."""
import json
import os
import random
import time

import pytest

import onespec
from onespec.backends import numpy as npb
from onespec.errors import OnespecError
from onespec.spec import OPS, analyze, parse_spec
from onespec.weights import init_state, layout

DOCS = int(os.environ.get("ONESPEC_FUZZ_DOCS", "10000"))
SEEDS = ["squeezenet1_1", "mobilenet_v3_small", "shufflenet_v2_x0_5", "micronet_m0", "hybridsn", "resnet18"]

ODD = [None, True, False, 0, -1, 1, 2, 3, 7, 2 ** 31, 10 ** 30, -(10 ** 30), 0.5, -0.0, 1e308, 1e-320, "NaN", "",
       "relu", "conv", "seq", "concat", "add", "bilinear", "a" * 300, "x.y", "forward", [], [1], [1, 2], [0, 0],
       [3, 8, 8], [-1, 4, 4], {}, {"op": "identity", "name": "i"}, [[1]], "\u0000", "é"]


def _mutate(rng: random.Random, node, depth=0):
    """Replace, drop, duplicate or retype one random place of a JSON value."""
    if isinstance(node, dict) and node and rng.random() < 0.7:
        key = rng.choice(list(node))
        r = rng.random()
        if r < 0.15:
            return {k: v for k, v in node.items() if k != key}
        if r < 0.25:
            return {**node, rng.choice(["extra", "op", "name", "groups", "kernel"]): rng.choice(ODD)}
        if r < 0.35 and key == "op":
            return {**node, "op": rng.choice(list(OPS) + ["nope"])}
        if r < 0.55:
            return {**node, key: rng.choice(ODD)}
        return {**node, key: _mutate(rng, node[key], depth + 1)}
    if isinstance(node, list) and node and rng.random() < 0.8:
        i = rng.randrange(len(node))
        r = rng.random()
        if r < 0.15:
            return node[:i] + node[i + 1:]
        if r < 0.3:
            return node[:i] + [node[i]] + node[i:]  # duplicate: same names
        if r < 0.4:
            return node[::-1]
        return node[:i] + [_mutate(rng, node[i], depth + 1)] + node[i + 1:]
    return rng.choice(ODD)


def _random_doc(rng: random.Random):
    ops = list(OPS)

    def node(d):
        op = rng.choice(ops)
        out = {"op": op, "name": rng.choice(["a", "b", "c", "0", "x1"])}
        for field in rng.sample(["out_channels", "kernel", "stride", "padding", "groups", "p", "fn", "merge",
                                 "split", "shape", "scale", "mode", "align_corners", "eps", "momentum", "layers",
                                 "branches", "gate", "fusions", "output_padding", "output_size", "affine"],
                                rng.randint(0, 5)):
            if field in ("layers", "branches"):
                out[field] = [node(d + 1) for _ in range(rng.randint(0, 3))] if d < 4 else []
            elif field == "gate":
                out[field] = node(d + 1) if d < 4 else {}
            else:
                out[field] = rng.choice(ODD)
        return out

    return {"name": "fz", "input_shape": rng.choice([[3, 8, 8], [1, 5, 5], [4], [2, 3, 4, 4], [3, 0, 8]]),
            "meta": {"family": "fuzz"}, "layers": [node(0) for _ in range(rng.randint(0, 4))]}


def _check(text: str) -> str:
    t0 = time.perf_counter()
    try:
        spec = parse_spec(text)
    except OnespecError:
        outcome = "rejected"
    else:
        # an accepted spec must analyse, lay out and evaluate in the numpy backend
        analyze(spec)
        if sum(t.shape and __import__("math").prod(t.shape) for t in layout(spec).values()) < 2_000_000 \
                and __import__("math").prod(spec.input_shape) < 100_000:
            import numpy as np
            x = np.zeros((1, *spec.input_shape), np.float32)
            y = npb.evaluate(spec, init_state(spec, 0), x)
            assert y.shape == (1, *spec.output_shape)
        outcome = "accepted"
    took = time.perf_counter() - t0
    assert took < 5.0, f"{took:.1f}s on {text[:300]}"
    return outcome


def test_document_fuzzer():
    rng = random.Random(20261124)
    seeds = [json.loads(onespec.get_spec(n).model_dump_json()) for n in SEEDS]
    counts = {"accepted": 0, "rejected": 0}
    for i in range(DOCS):
        if i % 4 == 0:
            doc = _random_doc(rng)
        else:
            doc = rng.choice(seeds)
            for _ in range(rng.randint(1, 4)):
                doc = _mutate(rng, doc)
        text = json.dumps(doc, allow_nan=True)
        if i % 50 == 0:  # byte-level damage too
            cut = rng.randrange(len(text))
            text = text[:cut] + rng.choice(["", "}", "]", "\x00", "{" * 5000, "[" * 5000]) + text[cut + 1:]
        counts[_check(text)] += 1
    print(f"document fuzzer: {DOCS} documents, {counts['accepted']} accepted, {counts['rejected']} rejected")
    assert counts["accepted"] > DOCS // 100 and counts["rejected"] > DOCS // 2


@pytest.mark.parametrize("text", ["", "null", "[]", "{}", "{" * 100_000, "[" * 100_000 + "]" * 100_000,
                                  '{"name": "x", "input_shape": [3, 8, 8], "meta": {"family": "f"}, "layers": ' +
                                  '{"op": "seq", "name": "s", "layers": [' * 3000 + "]}" * 3000 + "}"])
def test_pathological_documents_are_rejected_quickly(text):
    assert _check(text) == "rejected"
