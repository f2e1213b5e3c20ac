# The two quick-start commands (README): `make demo` and `make test`.
# Each sets up .venv itself from the pinned constraints, then runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# llama-cpp-python is built from source: portable CPU flags, because a
# native (-march=native) build dies with "Illegal instruction" on other CPUs.
export CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# litellm would fetch a price map at import; nothing needs the network.
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: setup demo test lint clean

setup: $(STAMP)

# orgctl is installed a second time, alone, as a plain path entry (editable_mode=compat): setuptools'
# default editable finder is imported by every interpreter in the venv at start-up (~20 ms each).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	@echo "Installing orgctl and its pinned dependencies (the first build of llama-cpp-python takes ~10 min)..."
	$(BIN)/python -m pip install --quiet --progress-bar off -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps -e . --config-settings editable_mode=compat
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/ruff check orgctl tests scripts bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
