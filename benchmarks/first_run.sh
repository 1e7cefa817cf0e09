#!/usr/bin/env bash
# The first run on a fresh machine, measured: clone this repository into a temporary directory, then time
# `make run` until the chat answers (venv, the chat's packages, the index of data/replies, the server).
#
#   bash benchmarks/first_run.sh [REPO] [PORT]        (or: make first-run)
#
# Prints the seconds to a serving chat and to its first answer, the packages installed and the venv size.
# pip's cache is off (PIP_NO_CACHE_DIR=1) as on a fresh machine; set PIP_NO_CACHE_DIR=0 to measure a warm
# cache instead. Needs network access to PyPI. The server is stopped by its process group at the end.
set -euo pipefail
SRC=${1:-$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)}
PORT=${2:-7871}
export PIP_NO_CACHE_DIR=${PIP_NO_CACHE_DIR:-1}
WORK=$(mktemp -d -t rag-first-run-XXXX)
LOG="$WORK/make-run.log"
git clone -q "$SRC" "$WORK/rag"
cd "$WORK/rag"
echo "fresh clone of $SRC at $WORK/rag ($(git log -1 --format=%h)); python: $(python3 --version)"

t0=$(date +%s.%N)
set -m
make run RUN_ARGS="--port $PORT" >"$LOG" 2>&1 &
PID=$!
set +m
cleanup() { kill -- -"$PID" 2>/dev/null || true; }
trap cleanup EXIT

served=""
for _ in $(seq 1 1800); do
  if ! kill -0 "$PID" 2>/dev/null; then echo "make run exited early:"; tail -30 "$LOG"; exit 1; fi
  if curl -sf "http://127.0.0.1:$PORT/config" >/dev/null 2>&1; then served=$(date +%s.%N); break; fi
  sleep 0.5
done
[ -n "$served" ] || { echo "not serving after 15 min"; tail -30 "$LOG"; exit 1; }
installed=$(stat -c %Y .venv/.installed-app)
answer=$(.venv/bin/python - "$PORT" <<'PY'
import sys, time
from gradio_client import Client
t = time.perf_counter()
r = Client(f"http://127.0.0.1:{sys.argv[1]}/", verbose=False).predict(question="营口市对博士每月补贴多少?", api_name="/ask")
print(f"{time.perf_counter() - t:.1f} s, {'2000元' in r.get('answer', '')}")
PY
)
python3 - "$t0" "$served" "$installed" <<'PY'
import sys
t0, served, installed = map(float, sys.argv[1:])
print(f"make run → installed: {installed - t0:.0f} s · serving: {served - t0:.0f} s ({(served - t0) / 60:.1f} min)")
PY
echo "first answer (营口市对博士每月补贴多少? → 2000元 found): $answer"
echo "packages: $(.venv/bin/pip list --disable-pip-version-check 2>/dev/null | tail -n +3 | wc -l) · venv: $(du -sh .venv | cut -f1)"
for p in torch llama_cpp_python sentence_transformers pytest playwright langchain_openai; do
  if .venv/bin/pip show -q "${p//_/-}" >/dev/null 2>&1; then echo "  installed: $p"; else echo "  not installed: $p"; fi
done
echo "log: $LOG"
