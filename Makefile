# Two commands on a fresh clone:  `make demo`  and  `make test`.
# The CPU build of torch is installed first and explicitly, so that resolving `torch>=2.3`
# never pulls gigabytes of CUDA wheels on a CPU-only machine. Override TORCH_SPEC on GPU hosts.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
SHARED     ?= ../shared
PY          = $(VENV)/bin/python
PIP         = $(VENV)/bin/pip --disable-pip-version-check -q

.PHONY: install models demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[dev]"
	touch $@

# The default pose model lives in ./models (git-ignored); fill it from ../shared when present.
models:
	@mkdir -p models
	@if [ -f $(SHARED)/models/movenet_multipose_lightning.onnx ] && [ ! -f models/movenet_multipose_lightning.onnx ]; then \
		cp $(SHARED)/models/movenet_multipose_lightning.onnx models/ ; fi

demo: install models
	$(VENV)/bin/ia-live --demo

test: install models
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
