# The two commands of the README. Both create .venv when missing and install into it.
VENV ?= .venv
PY := $(VENV)/bin/python
# On this project's machines `torch==2.13.0` is a local CPU wheel; a plain `torch` would pull a
# multi-GB CUDA build. Override on other machines, e.g. `make demo TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= cnnprof-runs

.PHONY: install demo test lint

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[torch,mlx,nvidia,dev]"
	touch $@

install: $(VENV)/.installed

# The main job on its embedded default: the study's CNN on built-in synthetic data, on the best
# backend this machine has, with telemetry and stacks, then the findings and report.html. The
# subset keeps it to a few minutes on a 2-core CPU; `make demo DEMO_ARGS=` trains on all 54,000.
DEMO_ARGS ?= --train-images 18000 --test-images 2000 --single-inference 500
demo: install
	$(VENV)/bin/cnnprof run --backend auto --dataset synthetic --epochs 3 $(DEMO_ARGS) --out $(DEMO_OUT)

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
