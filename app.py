"""Launch the chat app: `python app.py [--port 7861] [--host 0.0.0.0] [--index DIR] [--no-bootstrap]`.

The same as `rag serve`: settings come from rag.toml / environment variables / these options; when the
index is empty it is first built from data/replies. Open http://127.0.0.1:7860.
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rag.cli import app  # noqa: E402

if __name__ == "__main__":
    sys.exit(app(["serve", *sys.argv[1:]]))
