"""Trusting a bundle (issue 20, items 8 and 9): what a bundle states twice must agree, a signed
manifest says who produced it, unlisted files are reported, a hash mismatch shows both hashes, and a
run folder whose run failed says so. Every bundle comes from a real pipeline run and is edited the
way a person (or an attacker) would: a text editor on metadata.json and a recomputed manifest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import onnx
import pytest

from pipeline_core_deploy import predict

from helpers import BIN, IRIS_FAST, free_port, invoke, start

CLASSES = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
#: no tolerance at all: onnxruntime's float32 rounding differs from PyTorch's, so the export check fails
IMPOSSIBLE = ("--set", "export.atol=0.0", "--set", "export.rtol=0.0", "--set", "export.noise_factor=0.0")



@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """A real key pair made by `pipeline keygen`, and a second one (someone else's)."""
    folder = tmp_path_factory.mktemp("keys")
    for name in ("team", "other"):
        result = invoke("keygen", "--out", folder, "--name", name)
        assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def bundle(trained_iris, tmp_path) -> Path:
    """A fresh copy of the bundle a test may edit."""
    return Path(shutil.copytree(trained_iris.run_dir / "bundle", tmp_path / "bundle"))


@pytest.fixture
def rows(tmp_path) -> Path:
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    return tmp_path / "rows.json"


def rehash(bundle: Path, name: str) -> None:
    """Recompute ``name``'s sha256 and size in the manifest, as someone covering an edit would."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    data = (bundle / name).read_bytes()
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))


def edit_metadata(bundle: Path, change) -> None:
    metadata = json.loads((bundle / "metadata.json").read_text())
    change(metadata)
    (bundle / "metadata.json").write_text(json.dumps(metadata, indent=2))
    rehash(bundle, "metadata.json")


def _swap_classes(metadata: dict) -> None:
    metadata["classes"][0], metadata["classes"][1] = metadata["classes"][1], metadata["classes"][0]


def _refused(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for part in parts:
        assert part in result.output


# ---------------------------------------------------------------------------------------------
# What the bundle states twice


def test_swapped_class_names_with_a_recomputed_hash_are_refused(bundle, rows):
    edit_metadata(bundle, _swap_classes)
    _refused(invoke("predict", bundle, "--input", rows),
             "the bundle contradicts itself",
             "metadata.json says 'classes' is ['versicolor', 'setosa', 'virginica'], "
             "but model.onnx's metadata_props say ['setosa', 'versicolor', 'virginica']")


@pytest.mark.parametrize("change, message", [
    (lambda m: m["feature_names"].reverse(), "metadata.json says 'feature_names' is ['petal width (cm)'"),
    (lambda m: m["metrics"].update(accuracy=0.999), "metadata.json says 'metrics.accuracy' is 0.999, but model.onnx's metadata_props say 0."),
    (lambda m: m.pop("classes"), "model.onnx's metadata_props state 'classes' = ['setosa', 'versicolor', 'virginica'], but metadata.json has no 'classes'"),
    (lambda m: m["input"].update(name="x"), "metadata.json names the input 'x', but model.onnx's graph names it 'input'"),
    (lambda m: m["input"].update(dtype="float64"), "metadata.json says the input 'input' is float64, but model.onnx's graph takes float32"),
    (lambda m: m["input"].update(shape=["batch", 5]), "metadata.json gives the input 'input' the shape ['batch', 5], but model.onnx's graph declares ['batch', 4]"),
    (lambda m: m["outputs"].reverse(), "metadata.json lists the outputs ['probabilities', 'logits'], but model.onnx's graph has ['logits', 'probabilities']"),
], ids=["feature-order", "metrics", "classes-removed", "input-name", "input-dtype", "input-shape", "output-order"])
def test_any_edit_that_contradicts_the_model_file_is_refused(bundle, rows, change, message):
    edit_metadata(bundle, change)
    _refused(invoke("predict", bundle, "--input", rows), message)


def test_an_edit_made_in_both_places_still_disagrees_with_the_graph(bundle, rows):
    """Classes changed consistently in metadata.json and model.onnx's metadata_props: the graph's
    output still gives three values per row."""
    four = [*CLASSES, "hybrid"]
    edit_metadata(bundle, lambda m: m.update(classes=four))
    proto = onnx.load(str(bundle / "model.onnx"))
    for prop in proto.metadata_props:
        if prop.key == "classes":
            prop.value = json.dumps(four)
    onnx.save_model(proto, str(bundle / "model.onnx"))
    rehash(bundle, "model.onnx")
    _refused(invoke("predict", bundle, "--input", rows),
             "metadata.json lists 4 classes ['setosa', 'versicolor', 'virginica', 'hybrid'], but model.onnx's output 'logits' gives 3 value(s) per row")


def test_metadata_of_the_wrong_shape_is_refused_without_a_traceback(bundle, rows):
    edit_metadata(bundle, lambda m: m.update(input="float32 x 4"))
    _refused(invoke("predict", bundle, "--input", rows), "metadata.json: 'input' must be {\"name\"", "got 'float32 x 4'")


def test_a_tampered_byte_shows_both_full_hashes_and_where_they_differ(bundle, rows):
    expected = json.loads((bundle / "manifest.json").read_text())["files"]["model.onnx"]["sha256"]
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[-1] ^= 1  # one bit, in place
    (bundle / "model.onnx").write_bytes(bytes(data))
    found = hashlib.sha256(data).hexdigest()
    first = next(i for i, (a, b) in enumerate(zip(expected, found, strict=True)) if a != b)
    _refused(invoke("predict", bundle, "--input", rows),
             f"expected {expected}, found {found} (first difference at hex digit {first + 1} of 64; "
             f"the file still has {len(data)} bytes, so bytes were changed in place); refusing a modified bundle")


def test_files_the_manifest_does_not_list_are_reported_not_read(bundle, rows, tmp_path):
    (bundle / "notes.txt").write_text("who put this here?")
    (bundle / "extra").mkdir()
    (bundle / "extra" / "model.onnx").write_bytes(b"not a model")
    result = invoke("predict", bundle, "--input", rows, "--output", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    assert f"warning: {bundle} holds 2 file(s) its manifest does not list: extra/model.onnx, notes.txt; " \
           "they are not verified (nor signed) and nothing here reads them" in result.output
    assert [r["label"] for r in json.loads((tmp_path / "out.json").read_text())] == ["setosa", "virginica", "versicolor"]


# ---------------------------------------------------------------------------------------------
# Signatures


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(keys):
    assert stat.S_IMODE((keys / "team.key").stat().st_mode) == 0o600
    assert (keys / "team.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert not list(keys.glob(".*.tmp"))
    result = invoke("keygen", "--out", keys, "--name", "team")
    _refused(result, f"{keys / 'team.key'} already exists; refusing to overwrite a key")


def test_signed_bundle_verifies_everywhere_and_a_wrong_or_missing_signature_is_refused(trained_iris, bundle, keys, rows, tmp_path):
    result = invoke("sign", bundle, "--key", keys / "team.key")
    assert result.exit_code == 0, result.output
    signature = json.loads((bundle / "manifest.json.sig").read_text())
    assert signature["algorithm"] == "Ed25519" and signature["manifest_sha256"] == hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    assert f"signed with key {signature['key_id']}" in result.output

    ok = invoke("predict", bundle, "--input", rows, "--verify-key", keys / "team.pub")
    assert ok.exit_code == 0 and ok.output.startswith("label,probability_setosa"), ok.output
    deploy = subprocess.run([str(BIN / "pipeline-deploy"), "predict", str(bundle), "--input", str(rows), "--verify-key", str(keys / "team.pub")],
                            capture_output=True, text=True, timeout=120)
    assert deploy.returncode == 0 and deploy.stdout == ok.output, deploy.stderr

    _refused(invoke("predict", bundle, "--input", rows, "--verify-key", keys / "other.pub"),
             f"the bundle was signed with key {signature['key_id']}, not with {keys / 'other.pub'}", "refusing a bundle signed by someone else")
    _refused(invoke("predict", trained_iris.run_dir, "--input", rows, "--verify-key", keys / "team.pub"),  # the unsigned original
             "is not signed (no manifest.json.sig beside its manifest)", "`pipeline sign BUNDLE --key PRIVATE_KEY`")
    _refused(invoke("predict", bundle, "--input", rows, "--verify-key", keys / "team.key"),
             f"--verify-key: {keys / 'team.key'} is a private key; checking a signature takes the public key")
    (tmp_path / "garbage.pub").write_text("hello")
    _refused(invoke("predict", bundle, "--input", rows, "--verify-key", tmp_path / "garbage.pub"),
             f"--verify-key: {tmp_path / 'garbage.pub'} is not a public key in PEM or OpenSSH format")

    edit_metadata(bundle, _swap_classes)  # after signing, with the manifest recomputed: the signature breaks
    _refused(invoke("predict", bundle, "--input", rows, "--verify-key", keys / "team.pub"),
             "manifest.json.sig: manifest.json was changed after it was signed; refusing the bundle")


def test_pipeline_verify_checks_a_real_bundle_and_its_signature_without_predicting(bundle, keys):
    """`pipeline verify` (the training CLI's copy of `pipeline-deploy verify`) on a bundle from a real
    run: every file of the manifest, the TorchScript and .pt2 files among them, and the signature."""
    assert invoke("sign", bundle, "--key", keys / "team.key").exit_code == 0
    checked = invoke("verify", bundle, "--verify-key", keys / "team.pub", "--json")
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert {"model.onnx", "model.torchscript.pt", "model.pt2", "MODEL_CARD.md", "predict.py", "metadata.json"} <= set(report["files"])
    assert report["signed_by"] == json.loads((bundle / "manifest.json.sig").read_text())["key_id"]
    assert report["models"] == {"float32": {"file": "model.onnx", "batch_independent": True}}
    with open(bundle / "model.torchscript.pt", "r+b") as stream:  # a file neither predict nor serve loads
        stream.seek(100)
        byte = stream.read(1)
        stream.seek(100)
        stream.write(bytes([byte[0] ^ 0xFF]))
    _refused(invoke("verify", bundle, "--verify-key", keys / "team.pub"),
             f"bundle file {bundle / 'model.torchscript.pt'} does not match its sha256 in manifest.json", "refusing a modified bundle")
    _refused(invoke("serve", bundle, "--verify-key", keys / "team.pub", "--port", free_port()), "model.torchscript.pt does not match")


def test_sign_refuses_a_bundle_that_does_not_verify_and_a_public_key(bundle, keys):
    _refused(invoke("sign", bundle, "--key", keys / "team.pub"), "is a public key; signing takes the private key")
    edit_metadata(bundle, _swap_classes)
    _refused(invoke("sign", bundle, "--key", keys / "team.key"), "the bundle contradicts itself")
    assert not (bundle / "manifest.json.sig").exists()


def test_a_readable_private_key_is_warned_about(bundle, keys, tmp_path):
    loose = Path(shutil.copy(keys / "team.key", tmp_path / "loose.key"))
    os.chmod(loose, 0o644)
    result = invoke("sign", bundle, "--key", loose)
    assert result.exit_code == 0, result.output
    assert f"warning: {loose} can be read by other users (mode 0644)" in result.output


BUNDLE_SCRIPT = """
import runpy, sys
sys.modules["torch"] = None
sys.modules["pipeline_core"] = None
{block}
sys.argv = ["predict.py", *sys.argv[1:]]
runpy.run_path(sys.argv[1] + "/predict.py", run_name="__main__")
"""


def _bundle_script(bundle: Path, *args: object, block: str = "") -> subprocess.CompletedProcess[str]:
    """The bundle's own predict.py with torch and pipeline_core unavailable (and whatever ``block`` removes)."""
    return subprocess.run([sys.executable, "-c", BUNDLE_SCRIPT.format(block=block), str(bundle), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_the_bundles_own_predict_script_checks_signatures_and_needs_cryptography_only_then(bundle, keys, rows):
    assert invoke("sign", bundle, "--key", keys / "team.key").exit_code == 0
    checked = _bundle_script(bundle, "--input", rows, "--verify-key", keys / "team.pub")
    assert checked.returncode == 0 and checked.stdout.startswith("label,"), checked.stderr
    wrong = _bundle_script(bundle, "--input", rows, "--verify-key", keys / "other.pub")
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: ") and "signed by someone else" in wrong.stderr
    no_cryptography = 'sys.modules["cryptography"] = None'
    plain = _bundle_script(bundle, "--input", rows, block=no_cryptography)
    assert plain.returncode == 0 and plain.stdout == checked.stdout, plain.stderr
    missing = _bundle_script(bundle, "--input", rows, "--verify-key", keys / "team.pub", block=no_cryptography)
    assert missing.returncode == 2
    assert missing.stderr == "error: checking a bundle's signature needs the 'cryptography' package: pip install cryptography\n"


def test_keygen_and_sign_never_import_torch(bundle, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None
        from pipeline_core.cli import main
        for argv in (["keygen", "--out", {str(tmp_path / 'k')!r}], ["sign", {str(bundle)!r}, "--key", {str(tmp_path / 'k' / 'bundle-signing.key')!r}]):
            sys.argv = ["pipeline", *argv]
            try:
                main()
            except SystemExit as exit:
                assert exit.code in (0, None), exit.code
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (bundle / "manifest.json.sig").is_file()


# ---------------------------------------------------------------------------------------------
# A run folder whose run failed


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> Path:
    """A real run whose export check failed: weights kept, rejected files in bundle.failed/, no bundle/."""
    folder = tmp_path_factory.mktemp("failed")
    (folder / "pipeline.toml").write_text(textwrap.dedent(IRIS_FAST).lstrip())
    result = invoke("run", folder / "pipeline.toml", "--out", folder / "run", "--quiet", *IMPOSSIBLE)
    assert result.exit_code == 1, result.output
    return folder / "run"


def test_predict_on_a_failed_run_says_it_failed_and_how_to_export_again(failed_run, rows):
    _refused(invoke("predict", failed_run, "--input", rows),
             f"{failed_run}: this run failed at stage 'export' (RunFailed: export check failed: onnx:",
             f"so it has no bundle; the files its export rejected are in {failed_run / 'bundle.failed'}, unsealed; "
             f"after fixing the cause, export its trained weights again with `pipeline export {failed_run}`")
    script = subprocess.run([sys.executable, predict.__file__, str(failed_run), "--input", str(rows)], capture_output=True, text=True, timeout=120)
    assert script.returncode == 2 and "this run failed at stage 'export'" in script.stderr


def test_predict_on_an_unfinished_run_without_weights_says_so(failed_run, rows, tmp_path):
    run = Path(shutil.copytree(failed_run, tmp_path / "run"))
    (run / "weights.pt").unlink()
    (run / "status.json").write_text(json.dumps({"status": "running"}))
    _refused(invoke("predict", run, "--input", rows), "this run has not finished (status.json says 'running'", "so it has no bundle yet")


def test_predict_on_a_run_whose_sealed_bundle_lost_its_manifest_says_so(trained_iris, rows, tmp_path):
    run = Path(shutil.copytree(trained_iris.run_dir, tmp_path / "run"))
    (run / "bundle" / "manifest.json").unlink()  # the run's own manifest.json is still there: not a bundle's
    _refused(invoke("predict", run, "--input", rows),
             f"{run}: this run (status 'succeeded') has no sealed bundle ({run / 'bundle' / 'manifest.json'} is missing)",
             f"export its trained weights again with `pipeline export {run}`")


# ---------------------------------------------------------------------------------------------
# The server


def _serve_refused(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "pipeline-deploy"), "serve", *map(str, args), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=120)


def test_serve_refuses_a_contradicting_bundle_a_failed_run_and_a_bad_signature(bundle, failed_run, keys):
    unsigned = _serve_refused(bundle, "--verify-key", keys / "team.pub")
    assert unsigned.returncode == 2 and unsigned.stderr.startswith("error: ") and "is not signed" in unsigned.stderr
    failed = _serve_refused(failed_run)
    assert failed.returncode == 2 and "this run failed at stage 'export'" in failed.stderr
    assert invoke("sign", bundle, "--key", keys / "team.key").exit_code == 0
    other = subprocess.run([str(BIN / "pipeline"), "serve", str(bundle), "--verify-key", str(keys / "other.pub"), "--port", str(free_port())],
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and "refusing a bundle signed by someone else" in other.stderr
    edit_metadata(bundle, _swap_classes)
    swapped = _serve_refused(bundle)
    assert swapped.returncode == 2 and "metadata.json says 'classes' is ['versicolor', 'setosa', 'virginica']" in swapped.stderr
    assert "Traceback" not in unsigned.stderr + failed.stderr + other.stderr + swapped.stderr


def test_serve_verifies_signatures_from_the_flag_and_the_config_file(bundle, keys, tmp_path):
    assert invoke("sign", bundle, "--key", keys / "team.key").exit_code == 0
    (bundle / "README.txt").write_text("added by a deployer")
    config = tmp_path / "serve.toml"
    config.write_text(f'[defaults]\nverify_key = "{keys / "other.pub"}"\n\n[[models]]\nbundle = "{bundle}"\nname = "filed"\n'
                      f'verify_key = "{keys / "team.pub"}"\n')
    server = start([str(bundle), "--verify-key", str(keys / "team.pub"), "--config", str(config)], tmp_path)
    try:
        response = httpx.post(f"{server.url}/v2/models/filed/predict", content=json.dumps([ROWS[0], [1, float("nan"), 3, 4]]))
        assert response.status_code == 400  # and the message names the row and the column
        assert response.json()["error"] == "request body: data row 2 holds a value that is not finite (NaN or infinity) in column 'sepal width (cm)': nan"
        assert httpx.post(f"{server.url}/v2/models/iris_fast/predict", json=ROWS).status_code == 200
    finally:
        assert server.stop() == 0
    log = server.output()
    assert log.count("(checked)") == 2 and "signed by key" in log
    assert "holds 1 file(s) its manifest does not list: README.txt" in log
    (config).write_text(f'[[models]]\nbundle = "{bundle}"\nverify_key = "{keys / "other.pub"}"\n')
    refused = _serve_refused("--config", config)
    assert refused.returncode == 2 and "refusing a bundle signed by someone else" in refused.stderr
