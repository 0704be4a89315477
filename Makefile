# The README's two commands: `make demo` and `make test`. Each sets up .venv first.
# GPU users pick their own PyTorch build, e.g. `make test TORCH="torch==2.5.1"`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
# The stamp names the torch requirement, so asking for another build re-runs the set-up.
STAMP := $(VENV)/.setup-$(shell printf '%s' '$(TORCH)' | md5sum | cut -c1-12)

.PHONY: setup browser demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	# opencv-contrib-python-headless replaced opencv-python-headless; both write cv2/, so a venv that has the old
	# one drops both and gets the contrib build fresh.
	if $(BIN)/python -m pip show --quiet opencv-python-headless 2>/dev/null; then \
		$(BIN)/python -m pip uninstall --quiet -y opencv-python-headless opencv-contrib-python-headless; fi
	$(BIN)/python -m pip install --quiet -e ".[onnx,dev,tf,serve]"
	rm -f $(VENV)/.setup-*
	touch $@

demo: setup
	$(BIN)/hrnet demo

# The page's browser test drives headless Chromium; it is installed here when missing and apt-get can (root, or
# sudo without a password). Not fatal: without a browser that one test is skipped and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif ! command -v apt-get >/dev/null; then echo "no apt-get: install Chromium and chromedriver yourself for the browser test"; \
	else SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq >/dev/null 2>&1 && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; } || \
	  echo "could not install chromium + chromium-driver with apt-get: the browser test will be skipped"; fi

test: setup browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs build src/*.egg-info
