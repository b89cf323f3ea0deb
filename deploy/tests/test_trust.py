"""Every file a bundle's manifest lists is verified, by ``verify``, ``predict`` and ``serve`` alike
(issue 28, item 2): an edited or missing file is refused with exit 2 naming it, signed or not; a
file the manifest does not list is reported and never used; ``sign`` signs only a bundle that
verifies; a bundle of an earlier version still verifies, with what it lacks said plainly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bundles import copy_bundle, seal
from processes import deploy, free_port, run
from samples import write_inputs

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.fixture
def bundle(iris_bundle: Path, tmp_path: Path) -> Path:
    return copy_bundle(iris_bundle, tmp_path)


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    import numpy as np

    return write_inputs(tmp_path / "rows.csv", np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32), FEATURES)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    assert deploy("keygen", "--out", folder, cwd=folder).returncode == 0
    return folder


def _refused_everywhere(bundle: Path, rows: Path, *parts: str, key: Path | None = None) -> None:
    """``verify``, ``predict``, the bundle's own ``predict.py`` and ``serve`` all refuse, exit 2, naming ``parts``."""
    signed = ["--verify-key", str(key)] if key else []
    results = {
        "verify": deploy("verify", bundle, *signed, cwd=bundle.parent),
        "predict": deploy("predict", bundle, "--input", rows, *signed, cwd=bundle.parent),
        "serve": deploy("serve", bundle, "--port", free_port(), *signed, cwd=bundle.parent),
    }
    for name, result in results.items():
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.startswith("error: "), (name, result.stderr)
        for part in parts:
            assert part in result.stderr, (name, part, result.stderr)


def test_verify_checks_every_file_and_every_model_without_predicting(iris_bundle, tmp_path):
    result = deploy("verify", iris_bundle, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    listed = json.loads((iris_bundle / "manifest.json").read_text())["files"]
    assert report["verified"] is True and report["files"] == sorted(listed) and report["signed_by"] is None
    assert report["models"] == {"float32": {"file": "model.onnx", "batch_independent": True},
                                "int8_dynamic": {"file": "model.int8_dynamic.onnx", "batch_independent": False}}
    plain = deploy("verify", iris_bundle, cwd=tmp_path)
    assert plain.returncode == 0 and f"{len(listed)} file(s) match manifest.json" in plain.stdout
    assert "int8_dynamic (model.int8_dynamic.onnx: rows run alone)" in plain.stdout


@pytest.mark.parametrize("name, edit", [
    ("MODEL_CARD.md", lambda path: path.write_text(path.read_text() + "\nThis model is certified for medical use.\n")),
    ("predict.py", lambda path: path.write_text(path.read_text() + "\nimport os; os.system('echo pwned')\n")),
    ("model.int8_dynamic.onnx", lambda path: path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))),
], ids=["model-card", "predict-py", "a-variant-not-used"])
def test_an_edited_file_is_refused_whichever_file_it_is(bundle, rows, name, edit):
    edit(bundle / name)
    _refused_everywhere(bundle, rows, f"bundle file {bundle / name} does not match its sha256 in manifest.json", "refusing a modified bundle")


@pytest.mark.parametrize("name", ["MODEL_CARD.md", "predict.py"])
def test_a_missing_file_is_refused_naming_it(bundle, rows, name):
    (bundle / name).unlink()
    _refused_everywhere(bundle, rows, f"bundle file is missing: {bundle / name} (manifest.json lists it)", "refusing an incomplete bundle")


def test_every_problem_is_named_at_once(bundle, rows):
    (bundle / "MODEL_CARD.md").unlink()
    (bundle / "predict.py").write_text("print('replaced')\n")
    result = deploy("verify", bundle, cwd=bundle.parent)
    assert result.returncode == 2 and "MODEL_CARD.md (manifest.json lists it)" in result.stderr
    assert f"bundle file {bundle / 'predict.py'} does not match" in result.stderr and "refusing a modified bundle" in result.stderr


def test_a_signed_bundle_with_an_edited_file_is_refused_though_the_signature_is_valid(bundle, rows, keys):
    assert deploy("sign", bundle, "--key", keys / "bundle-signing.key", cwd=bundle.parent).returncode == 0
    with open(bundle / "predict.py", "a") as stream:  # the manifest and its signature are untouched
        stream.write("\n# an edit after signing\n")
    _refused_everywhere(bundle, rows, "predict.py does not match its sha256 in manifest.json", key=keys / "bundle-signing.pub")


def test_sign_refuses_a_bundle_that_does_not_verify(bundle, keys):
    (bundle / "MODEL_CARD.md").write_text("# a different card\n")
    result = deploy("sign", bundle, "--key", keys / "bundle-signing.key", cwd=bundle.parent)
    assert result.returncode == 2 and "MODEL_CARD.md does not match its sha256" in result.stderr
    assert not (bundle / "manifest.json.sig").exists()


def test_a_manifest_naming_a_file_outside_the_bundle_is_refused(bundle, rows, tmp_path):
    (tmp_path / "outside.txt").write_text("not the bundle's")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["../outside.txt"] = {"sha256": "0" * 64, "bytes": 16}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    _refused_everywhere(bundle, rows, "manifest.json lists '../outside.txt', which is not a file inside the bundle")


def test_files_the_manifest_does_not_list_are_reported_and_never_read(bundle, rows):
    (bundle / "notes.txt").write_text("added by a deployer")
    (bundle / "numpy.py").write_text("raise SystemExit('this file must never run')\n")
    result = deploy("verify", bundle, cwd=bundle.parent)
    assert result.returncode == 0 and "holds 2 file(s) its manifest does not list: notes.txt, numpy.py" in result.stderr
    predicted = deploy("predict", bundle, "--input", rows, cwd=bundle.parent)
    assert predicted.returncode == 0 and predicted.stdout.startswith("label,") and "never run" not in predicted.stderr


def test_a_bundle_of_an_earlier_version_still_verifies_and_says_what_it_lacks(bundle, rows):
    metadata = json.loads((bundle / "metadata.json").read_text())
    for key in ("batch_independent", "input_range"):
        metadata.pop(key)
    for entry in metadata["variants"].values():
        entry.pop("batch_independent")
    (bundle / "metadata.json").write_text(json.dumps(metadata))
    seal(bundle)  # metadata_props of model.onnx still hold input_range: drop it there too, as an old export had none
    import onnx

    for file in ("model.onnx", "model.int8_dynamic.onnx"):
        proto = onnx.load(str(bundle / file))
        kept = [prop for prop in proto.metadata_props if prop.key != "input_range"]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        onnx.save_model(proto, str(bundle / file))
    seal(bundle)
    checked = deploy("verify", bundle, cwd=bundle.parent)
    assert checked.returncode == 0, checked.stderr
    assert "was exported before batch independence was measured, so every row of model.onnx runs alone" in checked.stderr
    assert "records no training range of its inputs (exported by an earlier version)" in checked.stderr
    predicted = deploy("predict", bundle, "--input", rows, cwd=bundle.parent)
    assert predicted.returncode == 0 and len(predicted.stdout.splitlines()) == 3
    strict = deploy("predict", bundle, "--input", rows, "--range-check", "refuse", cwd=bundle.parent)
    assert strict.returncode == 2 and "--range-check refuse cannot check rows; export it again" in strict.stderr
    served = deploy("serve", bundle, "--range-check", "refuse", "--port", free_port(), cwd=bundle.parent)
    assert served.returncode == 2 and "range_check = \"refuse\" needs the training range" in served.stderr


def test_the_bundles_own_predict_py_verifies_every_file_too(bundle, rows):
    (bundle / "MODEL_CARD.md").write_text("# edited\n")
    import sys

    result = run([sys.executable, str(bundle / "predict.py"), str(bundle), "--input", str(rows)], bundle.parent)
    assert result.returncode == 2 and "MODEL_CARD.md does not match its sha256 in manifest.json" in result.stderr
