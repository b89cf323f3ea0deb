"""``pipeline-deploy``: the deploy side's own command line, for an environment without PyTorch
or pipeline-core (``pip install ./deploy``): ``serve``, ``predict``, ``verify``, ``keygen``, ``sign``, and ``pull``
(a registered model's bundle from MLflow).

The commands are defined here once; the training CLI (``pipeline predict|serve|keygen|sign``) adds
the same ones, so both say the same things."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline_core_deploy import __version__
from pipeline_core_deploy.serve.cli import serve

if TYPE_CHECKING:  # NumPy and the predict module are imported when a command runs, not for --help
    from pipeline_core_deploy import predict as deploy

VERIFY_KEY_HELP = "Refuse the bundle unless its manifest is signed by this Ed25519 public key (see `sign`)."
VARIANT_HELP = "Run one of the bundle's optimized variants (int8_dynamic, fp16, ...: metadata.json lists them) instead of model.onnx."
RANGE_CHECK_HELP = ("flag: add each row's features that lie outside their training range (by more than --range-margin of it) as a "
                    "last column out_of_range; refuse: stop at the first such row (exit 2). Default: no range check.")
RANGE_MARGIN_HELP = "How far beyond its training range a value may lie, as a fraction of that range."


def _warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)


def _fail(error: deploy.DeployError) -> SystemExit:
    click.secho(f"error: {error}", fg="red", err=True)
    return SystemExit(error.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipeline-deploy")
def cli() -> None:
    """Serve and run pipeline-core bundles with NumPy and onnxruntime alone."""


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), help="Rows to predict: .csv, .npy, .json or .parquet (needs pyarrow); or, for an image model, a .png/.jpg file or a folder of them.")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write predictions here (.csv or .json); default: stdout as CSV.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1024, show_default=True, help="Rows per onnxruntime call.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="onnxruntime provider.")
@click.option("--verify-key", type=click.Path(path_type=Path, dir_okay=False), help=VERIFY_KEY_HELP)
@click.option("--variant", metavar="NAME", help=VARIANT_HELP)
@click.option("--range-check", type=click.Choice(["flag", "refuse"]), help=RANGE_CHECK_HELP)
@click.option("--range-margin", type=click.FloatRange(min=0), default=0.5, show_default=True, help=RANGE_MARGIN_HELP)
def predict(bundle: Path, input_path: Path, output: Path | None, batch_size: int, device: str, verify_key: Path | None,
            variant: str | None, range_check: str | None, range_margin: float) -> None:
    """Predict with BUNDLE (a bundle folder, or a run folder holding bundle/)."""
    from pipeline_core_deploy import predict as deploy
    try:
        count = deploy.predict(bundle, input_path, output, batch_size, device, verify_key, warn=_warn, variant=variant,
                               range_check=range_check, margin=range_margin)
    except deploy.DeployError as error:
        raise _fail(error) from None
    if output is not None:
        click.echo(f"{count} predictions written to {output}", err=True)


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--verify-key", type=click.Path(path_type=Path, dir_okay=False), help=VERIFY_KEY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what was checked as JSON.")
def verify(bundle: Path, verify_key: Path | None, as_json: bool) -> None:
    """Check BUNDLE without predicting: every file against manifest.json, the signature (with
    --verify-key), and every ONNX file it ships loaded by onnxruntime and held against metadata.json.

    Exit code 0 when everything holds, 2 with a message naming what does not. Hashes catch accidents
    and naive edits; only a signature checked with a key you trust stops a deliberate edit."""
    import json

    from pipeline_core_deploy import predict as deploy

    try:
        checked = deploy.verify_bundle(bundle, verify_key)
    except deploy.DeployError as error:
        raise _fail(error) from None
    if as_json:
        click.echo(json.dumps(checked.as_json(), indent=2))
        return
    for message in checked.warnings:
        _warn(message)
    signed = (f"signed by key {checked.signer} (checked with {verify_key})" if checked.signer
              else "signature not checked (give --verify-key PUBLIC_KEY to check who signed it)")
    models = ", ".join(f"{name} ({file}{'' if independent else ': rows run alone'})" for name, (file, independent) in checked.models.items())
    click.echo(f"verified {checked.folder}: {len(checked.files)} file(s) match manifest.json (sha256 {checked.manifest_sha256[:16]}…); "
               f"{signed}\n  models: {models}")


@click.command()
@click.option("--out", "folder", required=True, type=click.Path(path_type=Path, file_okay=False), help="Folder for the two key files.")
@click.option("--name", default="bundle-signing", show_default=True, help="The key files are NAME.key (private) and NAME.pub (public).")
def keygen(folder: Path, name: str) -> None:
    """Make an Ed25519 key pair for signing bundles: NAME.key (private, mode 0600) and NAME.pub."""
    from pipeline_core_deploy import predict as deploy
    from pipeline_core_deploy import signing

    try:
        private, public, identity = signing.generate_keys(folder, name)
    except deploy.DeployError as error:
        raise _fail(error) from None
    click.echo(f"key {identity}\n  private: {private} (mode 0600: keep it secret, with whoever signs bundles)\n"
               f"  public:  {public} (give it to deployers: --verify-key {public})")


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path, dir_okay=False), help="The Ed25519 private key (NAME.key from `keygen`).")
def sign(bundle: Path, key_path: Path) -> None:
    """Sign BUNDLE's manifest (a bundle folder, or a run folder holding bundle/).

    The bundle is verified first; the signature goes beside the manifest as manifest.json.sig.
    Deployers check it with --verify-key PUBLIC_KEY on predict, serve and the bundle's predict.py."""
    from pipeline_core_deploy import predict as deploy
    from pipeline_core_deploy import signing

    try:
        path, identity = signing.sign_bundle(bundle, key_path, warn=_warn)
    except deploy.DeployError as error:
        raise _fail(error) from None
    click.echo(f"signed with key {identity}: {path}")


@click.command()
@click.argument("model_uri", metavar="MODEL_URI")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--tracking-uri", help="The MLflow tracking server holding the registry; default: MLFLOW_TRACKING_URI.")
@click.option("--verify-key", type=click.Path(path_type=Path, dir_okay=False), help=VERIFY_KEY_HELP)
def pull(model_uri: str, folder: Path, tracking_uri: str | None, verify_key: Path | None) -> None:
    """Fetch a registered model's bundle (MODEL_URI: models:/NAME/VERSION, models:/NAME/latest or
    models:/NAME@ALIAS) from an MLflow registry into FOLDER, verified, for `predict` and `serve`.

    FOLDER must be new or empty; it receives the bundle only once every file matches its manifest,
    the manifest is the one the registry version names, and (with --verify-key) the signature holds.
    Needs MLflow's light client: pip install 'pipeline-core-deploy[mlflow]'."""
    from pipeline_core_deploy import predict as deploy
    from pipeline_core_deploy.pull import pull as pull_bundle

    try:
        checked = pull_bundle(model_uri, folder, tracking_uri, verify_key)
    except deploy.DeployError as error:
        raise _fail(error) from None
    for message in checked.warnings:
        _warn(message)
    click.echo(f"pulled {model_uri} into {checked.folder}: {len(checked.files)} file(s) match manifest.json "
               f"(sha256 {checked.manifest_sha256[:16]}…, the registry version's)")


for command in (predict, verify, serve, keygen, sign, pull):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pipeline-deploy")
