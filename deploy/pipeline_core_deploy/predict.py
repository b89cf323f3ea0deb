"""Run a deploy bundle with onnxruntime alone.

This module imports neither torch nor the rest of pipeline_core: it needs Python, NumPy and
onnxruntime, and a one-file build of it (:func:`pipeline_core_deploy.standalone.script`) ships
inside every bundle as ``predict.py``::

    pip install onnxruntime numpy
    python bundle/predict.py bundle --input rows.csv --output predictions.csv

Loading is safe: every file is checked against the bundle's ``manifest.json`` (sha256) before use, an
ONNX file whose weights live in external data outside the bundle is refused, and what the bundle
states twice (classes, feature names, the input and outputs in ``metadata.json``, in ``model.onnx``'s
own ``metadata_props`` and in its graph) must agree. With ``--verify-key PUBLIC_KEY`` the manifest
must also carry an Ed25519 signature by that key (``manifest.json.sig``, written by ``pipeline sign``;
checking it needs the ``cryptography`` package, imported only then). Files the manifest does not list
are reported, never read.

A bundle of an image model (``metadata.json`` has ``image``) also takes PNG or JPEG files, one or a
folder of them, decoded with Pillow (imported only then) and resized as its data pipeline did;
the predictions then name each file.

Bad input gets an error naming what the bundle expects (its feature names, input shape and dtype),
never a traceback. Rows are counted as data rows from 1 (a CSV header is not a row), and a CSV's
messages also give the line of the file: ``rows.csv, line 7: data row 6, column 'x': 'abc' is not
a number``.

In the deploy package, this module holds the command line (:func:`main`) and :func:`predict`, the
one call behind it, and imports every public name of the modules the work is split into
(``__all__``), so that ``from pipeline_core_deploy import predict`` then ``predict.open_bundle`` and
the like work wherever they are used. Those modules, each needing only the ones before it:
``common`` (file names, :class:`DeployError`), ``table_columns`` (raw table columns), ``manifest`` (hashes), ``signature`` (Ed25519),
``consistency`` (what the bundle states twice), ``bundle`` (:class:`Bundle`), ``opening``
(:func:`open_bundle`, :func:`verify_bundle`), ``row_checks`` (shape, dtype, training range, outputs),
``images``, ``csv_input`` and ``readers`` (rows in), ``records`` and ``writers`` (predictions out). A
bundle's ``predict.py`` is those modules and this one, in that order, in one file.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline_core_deploy.bundle import Bundle, InputRange, variant_file
from pipeline_core_deploy.common import (
    BASELINE_VARIANT,
    BUNDLE_DIR,
    FAILED_BUNDLE,
    MANIFEST,
    METADATA,
    MODEL,
    RUN_STATUS,
    RUN_WEIGHTS,
    SIGNATURE,
    SIGNATURE_FORMAT,
    TASKS,
    DeployError,
)
from pipeline_core_deploy.csv_input import _csv_cells as _csv_cells  # the cell-by-cell reader, which tests hold the fast one to
from pipeline_core_deploy.images import IMAGE_FORMATS, ImageFiles, decode_image, image_spec, images_from_json, is_image_input
from pipeline_core_deploy.manifest import bundle_folder, verify_files
from pipeline_core_deploy.opening import Verification, open_bundle, open_plain_onnx, verify_bundle
from pipeline_core_deploy.readers import INPUT_FORMATS, read_inputs, read_located, rows_from_json
from pipeline_core_deploy.records import OUT_OF_RANGE, predictions
from pipeline_core_deploy.row_checks import (
    RANGE_CHECKS,
    RANGE_MARGIN,
    check_outputs,
    check_rows,
    out_of_range,
    out_of_range_names,
    refuse_out_of_range,
)
from pipeline_core_deploy.signature import ed25519_api, key_id, load_public_key, verify_signature
from pipeline_core_deploy.table_columns import BLANK_TOKENS, COLUMN_TYPES, TableColumn, TableColumns, is_blank
from pipeline_core_deploy.writers import (
    IMAGE_CHUNK,
    OUTPUT_CHUNK,
    OUTPUT_FORMATS,
    RowChecks,
    check_output_path,
    write_predictions,
)

__all__ = [
    "BLANK_TOKENS", "COLUMN_TYPES", "TableColumn", "TableColumns", "is_blank",
    "BASELINE_VARIANT", "BUNDLE_DIR", "FAILED_BUNDLE", "IMAGE_CHUNK", "IMAGE_FORMATS", "INPUT_FORMATS", "MANIFEST", "METADATA",
    "MODEL", "OUTPUT_CHUNK", "OUTPUT_FORMATS", "OUT_OF_RANGE", "RANGE_CHECKS", "RANGE_CHECK_HELP", "RANGE_MARGIN",
    "RANGE_MARGIN_HELP", "RUN_STATUS", "RUN_WEIGHTS", "SIGNATURE", "SIGNATURE_FORMAT", "TASKS",
    "Bundle", "DeployError", "ImageFiles", "InputRange", "RowChecks", "Verification",
    "bundle_folder", "check_output_path", "check_outputs", "check_rows", "decode_image", "ed25519_api", "image_spec",
    "images_from_json", "is_image_input", "key_id", "load_public_key", "main", "open_bundle", "open_plain_onnx", "out_of_range",
    "out_of_range_names", "predict", "predictions", "read_inputs", "read_located", "refuse_out_of_range", "rows_from_json",
    "variant_file", "verify_bundle", "verify_files", "verify_signature", "write_predictions",
]

RANGE_CHECK_HELP = ("flag: add each row's features that lie outside their training range (by more than --range-margin of it) "
                    "as a last column 'out_of_range'; refuse: stop at the first such row (exit 2)")
RANGE_MARGIN_HELP = f"how far beyond its training range a value may lie, as a fraction of the range (default {RANGE_MARGIN})"


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def predict(bundle_path: Path, input_path: Path, output: Path | None = None, batch_size: int = 1024, device: str = "cpu",
            verify_key: Path | None = None, warn: Callable[[str], None] = _warn, variant: str | None = None,
            range_check: str | None = None, margin: float = RANGE_MARGIN) -> int:
    """Open ``bundle_path`` (checking its signature against ``verify_key`` when given), read
    ``input_path``, run the model, write the predictions; returns the number of rows predicted.
    ``range_check`` ``flag`` adds each row's features outside their training range (by more than
    ``margin`` of it) to the output; ``refuse`` refuses such a row."""
    if batch_size < 1:
        raise DeployError(f"--batch-size must be at least 1, got {batch_size}")
    if range_check not in (None, *RANGE_CHECKS):
        raise DeployError(f"--range-check must be one of {', '.join(RANGE_CHECKS)}, got {range_check!r}")
    if not (math.isfinite(margin) and margin >= 0):
        raise DeployError(f"--range-margin must be a finite number of at least 0, got {margin!r}")
    if output is not None:
        check_output_path(Path(output), Path(input_path))
    bundle = open_bundle(bundle_path, device, verify_key=verify_key, variant=variant)
    for message in bundle.warnings():
        warn(message)
    if is_image_input(Path(input_path)):  # an image file or a folder of them
        images = ImageFiles(Path(input_path), bundle)
        checks = RowChecks(str(input_path), lambda row: f" ({images.names[row]})", range_check, margin)
        write_predictions(bundle, images, output, batch_size, images.names, checks, chunk=IMAGE_CHUNK)
        return len(images)
    rows, locate = read_located(input_path, bundle)
    write_predictions(bundle, rows, output, batch_size, checks=RowChecks(str(input_path), locate, range_check, margin), chunk=OUTPUT_CHUNK)
    return len(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python predict.py BUNDLE --input FILE [--output FILE] [--batch-size N] [--device cpu|cuda] [--verify-key PUBLIC_KEY]
    [--variant NAME] [--range-check flag|refuse] [--range-margin M]``."""
    parser = argparse.ArgumentParser(prog="predict.py", description="Predict with a pipeline-core bundle using onnxruntime.")
    parser.add_argument("bundle", type=Path, help="the bundle folder (or a run folder holding bundle/)")
    parser.add_argument("--input", required=True, type=Path, help="rows to predict: .csv, .npy, .json or .parquet (needs pyarrow); or a .png/.jpg image or a folder of them")
    parser.add_argument("--output", type=Path, help="where to write predictions (.csv or .json); default: stdout")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--verify-key", type=Path, help="refuse the bundle unless its manifest is signed by this Ed25519 public key")
    parser.add_argument("--variant", help="run one of the bundle's optimized variants (metadata.json lists them) instead of model.onnx")
    parser.add_argument("--range-check", choices=RANGE_CHECKS, help=RANGE_CHECK_HELP)
    parser.add_argument("--range-margin", type=float, default=RANGE_MARGIN, help=RANGE_MARGIN_HELP)
    args = parser.parse_args(argv)
    try:
        predict(args.bundle, args.input, args.output, args.batch_size, args.device, args.verify_key, variant=args.variant,
                range_check=args.range_check, margin=args.range_margin)
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
