# Two commands on a fresh clone:  `make demo`  and  `make test`.
# The CPU build of torch is installed first and explicitly, so that resolving `torch>=2.3`
# never pulls gigabytes of CUDA wheels on a CPU-only machine. Override TORCH_SPEC on GPU hosts.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY          = $(VENV)/bin/python
PIP         = $(VENV)/bin/pip --disable-pip-version-check -q

.PHONY: install models demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[dev]"
	touch $@

# The default pose model is committed in ./models (Apache-2.0, models/NOTICE.md); this target only checks
# that it is there (a clone made without it, e.g. a sparse checkout, fails here with the reason).
POSE_MODEL  = models/movenet_multipose_lightning.onnx
models:
	@test -s $(POSE_MODEL) || { echo "make: $(POSE_MODEL) is missing from this checkout (see models/NOTICE.md)" >&2; exit 1; }

demo: install models
	$(VENV)/bin/ia-live --demo

test: install models
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
