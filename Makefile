# Two entry points: `make run` (conformance report) and `make test` (full suite).
# Both create .venv and install onespec with all three frameworks first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.onespec-installed

.PHONY: install run run-full numerics test fuzz slow bench speed clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[all,test]'
	# PaddleClas (the importer tests build its models): without its dependencies, which pin
	# numpy==1.24.4 and opencv; its backbones need only paddle (tests/libzoo.py)
	$(PY) -m pip install --no-deps 'paddleclas==2.6.0'
	touch $(STAMP)

install: $(STAMP)

# the whole zoo in every framework at case-preserving small inputs (~4 min); run-full: default sizes (~6 min)
run: $(STAMP)
	$(PY) -m onespec conformance --small

run-full: $(STAMP)
	$(PY) -m onespec conformance

# same weights everywhere vs the numpy reference, and one SGD step across frameworks
numerics: $(STAMP)
	$(PY) -m onespec conformance --numerics

# the default loop (within 15 min on 2 cores, install included): everything not marked slow, two
# workers (most tests wait on one single-threaded framework child at a time)
test: $(STAMP)
	ONESPEC_REQUIRE_FRAMEWORKS=1 $(PY) -m pytest -q -n 2 --dist loadfile --durations=15

# 100,000 fuzzed spec documents, 1,000 random specs through all three frameworks, 20,000
# mutants of every data file and checkpoint format onespec reads and 20,000 mutated recipes (~65 min)
fuzz: $(STAMP)
	ONESPEC_REQUIRE_FRAMEWORKS=1 ONESPEC_FUZZ_DOCS=100000 ONESPEC_PROPERTY_SPECS=1000 ONESPEC_FUZZ_FILES=20000 \
		ONESPEC_FUZZ_RECIPES=20000 $(PY) -m pytest -q tests/spec/test_fuzz.py tests/conformance/test_properties.py \
		tests/data/test_fuzz_files.py tests/training/test_recipe_fuzz.py

# the heavy tests: whole-zoo numerics at the models' default input sizes (every model compiled and
# stepped), the Paddle and MindSpore 2-process training launchers, every data source in every
# framework, every export format for every zoo model at its default size, the folded whole zoo in every framework,
# every torchvision / timm / MindCV / PaddleClas / MindSpore-zoo model imported and run in every framework
slow: $(STAMP)
	ONESPEC_REQUIRE_FRAMEWORKS=1 $(PY) -m pytest -q -m slow

# training throughput: onespec's loop and data pipeline vs hand-written torch / Paddle loops (~10 min)
bench: $(STAMP)
	$(PY) benchmarks/train_throughput.py --rounds 5 --steps 30

# eval / train-step speed against torchvision, paddle.vision.models and MindCV, folded networks,
# and onespec's folded ONNX against torchvision's in onnxruntime (docs/deploy.md; long: MindSpore in
# PYNATIVE takes ~10x torch's time per forward)
speed: $(STAMP)
	$(PY) benchmarks/zoo_speed.py --backends torch paddle mindspore --train --fold --onnx

clean:
	rm -rf $(VENV) build *.egg-info
