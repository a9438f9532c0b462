"""Export: a fine-tuned model as a folder the Hugging Face (or ONNX) tools load, and such folders back into localft.

What each checkpoint family becomes (`export_model`):

    causal_lm    a merged causal LM folder (safetensors, tokenizer with chat template, generation config) and the
                 LoRA adapter alone in `adapter/`                                   (`localft.export.causal`)
    classifier   a sequence-classification folder with `modeling_localft.py` (mean pooling, heads, ensemble
                 average, TF-IDF): one encoder, an ensemble, TF-IDF alone          (`localft.export.classifier`)
    encoder      the standard sequence-classification folder it already holds, with its labels
    onnx         (format) `model.onnx` and its tokenizer, for a single-encoder classifier or a legacy encoder

Every export carries `localft.json` (`localft.export.manifest`): the checkpoint's description and the input the
model expects. `localft.export.importing` turns an exported folder back into a checkpoint localft serves.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Literal

from localft.errors import InvalidRequestError, ModelError
from localft.export.manifest import MANIFEST_FILE, ExportKind, read_manifest
from localft.training.checkpoint import read_checkpoint

ExportFormat = Literal["hf", "onnx"]
FORMATS: tuple[ExportFormat, ...] = ("hf", "onnx")

__all__ = ["FORMATS", "MANIFEST_FILE", "ExportFormat", "ExportKind", "export_model", "read_manifest", "zip_folder"]


def export_model(checkpoint: Path, out: Path, cache_dir: Path, fmt: str = "hf") -> ExportKind:
    """Write the checkpoint's export to `out` (created; it must not hold files) and say what it became."""
    if fmt not in FORMATS:
        raise InvalidRequestError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}.", param="format")
    meta = read_checkpoint(checkpoint)
    if out.exists() and any(out.iterdir()):
        raise InvalidRequestError(f"{out} is not empty: export into a new or empty folder.", param="output")
    out.mkdir(parents=True, exist_ok=True)
    try:
        if fmt == "onnx":
            if meta.family == "causal_lm":
                raise InvalidRequestError(
                    "ONNX export is for encoder classifiers; a LoRA fine-tune exports as a Hugging Face folder "
                    "(format=hf).",
                    param="format",
                    code="format_not_available",
                )
            from localft.export.onnx import export_onnx

            export_onnx(checkpoint, meta, out, cache_dir)
            return "onnx"
        if meta.family == "causal_lm":
            from localft.export.causal import export_causal

            export_causal(checkpoint, meta, out, cache_dir)
        elif meta.family == "classifier":
            from localft.export.classifier import export_pooled

            export_pooled(checkpoint, meta, out, cache_dir)
        else:
            from localft.export.classifier import export_legacy_encoder

            export_legacy_encoder(checkpoint, meta, out)
        return meta.family
    except OSError as exc:
        shutil.rmtree(out, ignore_errors=True)
        raise ModelError(f"Could not export {checkpoint}: {exc}") from exc
    except Exception:
        shutil.rmtree(out, ignore_errors=True)
        raise


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip a folder's files under their relative paths, stored rather than deflated: float weights compress little."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as bundle:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                bundle.write(path, path.relative_to(folder).as_posix())
    return archive
