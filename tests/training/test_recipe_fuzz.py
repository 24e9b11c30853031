"""Recipe fuzzer: mutated recipe files (the shipped recipes with fields replaced, dropped,
retyped, duplicated, and their bytes flipped or cut) never raise anything but onespec's errors
from ``load_recipe`` and never take over 2 s each. ``ONESPEC_FUZZ_RECIPES`` sets the count
(``make fuzz`` runs 20,000)."""
import glob
import os
import random
import time

import yaml

from onespec.errors import OnespecError
from onespec.training.recipe import load_recipe

RECIPES = int(os.environ.get("ONESPEC_FUZZ_RECIPES", "300"))
ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "recipes")
ODD = [None, True, 0, -1, 1, 2 ** 63, 1e308, -1e308, float("nan"), float("inf"), 0.5, "", "a" * 5000, "sgd",
       "logging:basicConfig", "os:system", "torch.hub:load", "../../etc/passwd", [], [1, "x"], {}, {"name": 3},
       "\u0000", "\udcff".encode("utf-8", "surrogatepass").decode("latin-1")]
TEXT_TRICKS = ["&a [1, 2]", "*a", "!!python/object/apply:os.system ['true']", "{", "- - -", "\t", "epochs: 1\nepochs: 2",
               "<<: {epochs: 3}", "? [1, 2]\n: 3", "\xff\xfe", "%YAML 9.9\n---"]


def _mutate(rng: random.Random, doc):
    if isinstance(doc, dict) and doc and rng.random() < 0.8:
        key = rng.choice(list(doc))
        r = rng.random()
        if r < 0.2:
            return {k: v for k, v in doc.items() if k != key}
        if r < 0.3:
            return {**doc, rng.choice(["extra", "model", "epochs", "optimizer", "data"]): rng.choice(ODD)}
        if r < 0.6:
            return {**doc, key: rng.choice(ODD)}
        return {**doc, key: _mutate(rng, doc[key])}
    if isinstance(doc, list) and doc:
        i = rng.randrange(len(doc))
        return doc[:i] + [_mutate(rng, doc[i])] + doc[i + 1:]
    return rng.choice(ODD)


def _text(rng: random.Random, seeds: list[str]) -> bytes:
    text = rng.choice(seeds)
    r = rng.random()
    if r < 0.5:
        try:
            return yaml.safe_dump(_mutate(rng, yaml.safe_load(text)), allow_unicode=True).encode("utf-8", "replace")
        except (yaml.YAMLError, ValueError):
            return text.encode()
    data = bytearray(text.encode())
    if r < 0.7:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if r < 0.85:
        return bytes(data[:rng.randrange(len(data))])
    lines = text.splitlines()
    lines.insert(rng.randrange(len(lines) + 1), rng.choice(TEXT_TRICKS))
    return "\n".join(lines).encode("utf-8", "surrogateescape")


def test_mutated_recipes_raise_only_onespec_errors(tmp_path):
    seeds = [open(p).read() for p in sorted(glob.glob(os.path.join(ROOT, "*.yaml")))]
    assert seeds, "the shipped recipes are the fuzzer's seeds"
    rng = random.Random(20261207)
    path = str(tmp_path / "recipe.yaml")
    loaded = refused = 0
    for i in range(RECIPES):
        with open(path, "wb") as f:
            f.write(_text(rng, seeds))
        t0 = time.perf_counter()
        try:
            load_recipe(path)
            loaded += 1
        except OnespecError as err:
            assert str(err).strip(), f"mutant {i}: an empty message"
            refused += 1
        except Exception as err:  # noqa: BLE001 - the property under test
            raise AssertionError(f"mutant {i} raised {type(err).__name__}: {err}\n"
                                 f"{open(path, 'rb').read()[:400]!r}") from err
        assert time.perf_counter() - t0 < 2.0, f"mutant {i} took {time.perf_counter() - t0:.1f} s"
    assert refused > RECIPES // 10, (loaded, refused)  # the mutations do reach the validators
