"""What a job keeps on disk: what serves its models, and what resumes it only while it can still be resumed.

A checkpoint folder holds serving files (the weights, served as `ft:...:ckpt-step-N`) and `trainer_state.pt`
(optimizer moments and schedule, about twice the size of the trained weights, needed only to resume). Once a job
has ended (succeeded, failed or cancelled) nothing resumes it, so its trainer states and mid-epoch progress saves
go. A fine-tuned model is its final checkpoint's serving files, hard-linked where the file system allows, so its
weights are stored once however many ids serve them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from localft.training.checkpoint import STATE_FILE, remove_progress


def release_job_folder(job_folder: Path) -> None:
    """Delete what only resuming needs from an ended job's folder: its trainer states and progress saves."""
    if not job_folder.is_dir():
        return
    remove_progress(job_folder)
    for leftover in job_folder.glob("*.partial"):  # a save a crash or a stop interrupted
        shutil.rmtree(leftover, ignore_errors=True)
    for state in job_folder.glob(f"step-*/{STATE_FILE}"):
        state.unlink(missing_ok=True)


def publish_model(checkpoint: Path, target: Path) -> None:
    """Make `target` the serving files of `checkpoint` (no trainer state), replacing whatever was there."""
    shutil.rmtree(target, ignore_errors=True)  # a half-made folder from a crash at this very point
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(checkpoint, partial, ignore=shutil.ignore_patterns(STATE_FILE), copy_function=_link_or_copy)
    partial.rename(target)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, destination)
