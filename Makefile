# Quick start: `make demo` then `make test`. Both create .venv when missing.
# TORCH_SPEC picks the torch build (default: the CPU wheel these machines carry); e.g.
#   make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dash-installed
export HF_HUB_DISABLE_TELEMETRY := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: demo test install app bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m dash_diffusion.demo --output_dir outputs/demo

test: $(STAMP)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || ( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 ) || echo "chromium not installed: the browser test will say why it cannot run"
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

app: $(STAMP)
	$(PY) -m app --base builtin:mini-sdxl --adapters_dir outputs

bench: $(STAMP)
	$(PY) benchmarks/layer_overhead.py

clean:
	rm -rf outputs .pytest_cache
