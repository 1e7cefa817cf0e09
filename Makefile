# All set-up lives here: a fresh machine needs only `make test` or `make run`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# llama-cpp-python is built from source; native CPU flags crashed at the first token on these machines.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install lint test test-fast run ingest bench eval clean system-deps

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip wheel setuptools
	# torch first: a local CPU wheel of exactly this version exists; any other pulls CUDA.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev,st,llm,app,eval,scale]'
	touch $(STAMP)

# Debian packages for browser tests: Chromium and a CJK font.
system-deps:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi 'WenQuanYi'; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; fi; \
	fi

lint: install
	$(BIN)/ruff check rag tests app.py benchmarks

test: install system-deps lint
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

run: install
	$(BIN)/rag serve

ingest: install
	$(BIN)/rag ingest data/replies

bench: install
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) vectorstore/*
