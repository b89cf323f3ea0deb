"""Signed bundles: who produced a bundle, not only whether its files are intact.

The manifest's sha256 of every file says the files are the ones the manifest lists; anyone who edits
a file can write a new manifest too. A signature says who wrote the manifest: ``pipeline keygen``
makes an Ed25519 key pair (``cryptography``), ``pipeline sign BUNDLE --key PRIVATE_KEY`` writes a
detached signature of ``manifest.json`` beside it (``manifest.json.sig``), and ``--verify-key
PUBLIC_KEY`` on ``predict``, ``serve`` and the bundle's ``predict.py`` refuses a bundle that this key
did not sign. Checking lives in :mod:`pipeline_core_deploy.signature` (``verify_signature``), which
the one-file ``predict.py`` inside every bundle holds too; this module is the producer's side.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline_core_deploy.common import MANIFEST, SIGNATURE, SIGNATURE_FORMAT, DeployError
from pipeline_core_deploy.opening import open_bundle
from pipeline_core_deploy.signature import ed25519_api, key_id

#: ``pipeline keygen`` writes NAME.key (private, mode 0600) and NAME.pub (public)
KEY_NAME = "bundle-signing"


def _staged(path: Path, data: bytes, mode: int) -> Path:
    """``data`` in a temporary file beside ``path``, created with ``mode`` (never wider, even for a
    moment) and flushed to disk; :func:`_commit` puts it in place."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)  # whatever the umask
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _commit(files: dict[Path, tuple[bytes, int]]) -> None:
    """Write every file whole or none of them: all are staged before any is renamed into place."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, (data, mode) in files.items():
            staged.append((_staged(path, data, mode), path))
        for temporary, path in staged:
            os.replace(temporary, path)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)


def generate_keys(folder: Path, name: str = KEY_NAME) -> tuple[Path, Path, str]:
    """A new Ed25519 key pair in ``folder``: ``NAME.key`` (PKCS#8 PEM, mode 0600) and ``NAME.pub``
    (PEM). Returns both paths and the key's id. Existing key files are never overwritten."""
    _, serialization, ed25519 = ed25519_api()
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise DeployError(f"{path} already exists; refusing to overwrite a key (choose another --out folder or --name)")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _commit({private_path: (private, 0o600), public_path: (public, 0o644)})
    except OSError as error:
        raise DeployError(f"cannot write the keys to {folder}: {error}") from None
    return private_path, public_path, key_id(key.public_key())


def load_private_key(path: Path, warn: Callable[[str], None] | None = None) -> Any:
    """The Ed25519 private key in ``path`` (PKCS#8 PEM as ``pipeline keygen`` writes it, or OpenSSH).
    ``warn`` hears about a key file that others may read."""
    exceptions, serialization, ed25519 = ed25519_api()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DeployError(f"--key: private key file not found: {path}") from None
    except OSError as error:
        raise DeployError(f"--key: cannot read {path}: {error}") from None
    if b"PRIVATE KEY" not in data and (b"PUBLIC KEY" in data or data.startswith(b"ssh-")):
        raise DeployError(f"--key: {path} is a public key; signing takes the private key ({KEY_NAME}.key from `pipeline keygen`), "
                          "and the public key is what deployers pass to --verify-key")
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise DeployError(f"--key: {path} is encrypted with a passphrase; `pipeline sign` takes an unencrypted Ed25519 key "
                          "(keep it in a secret store, readable by the signer only)") from None
    except (ValueError, exceptions.UnsupportedAlgorithm) as error:
        raise DeployError(f"--key: {path} is not a private key in PEM or OpenSSH format ({error})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise DeployError(f"--key: {path} is a {type(key).__name__} key; bundles are signed with Ed25519 keys (`pipeline keygen`)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 and warn is not None:
        warn(f"{path} can be read by other users (mode {mode:04o}); a private key should be mode 0600: chmod 600 {path}")
    return key


def sign_bundle(path: Path, key_path: Path, warn: Callable[[str], None] | None = None) -> tuple[Path, str]:
    """Sign the manifest of the bundle at ``path`` (a bundle folder or a run folder holding
    ``bundle/``) with the private key in ``key_path``. The bundle is verified first (hashes, external
    data, what it states twice), so only a sound bundle is signed. Writes ``manifest.json.sig``
    atomically and returns its path and the key's id."""
    key = load_private_key(key_path, warn)
    bundle = open_bundle(path, threads=1)
    if not bundle.verified:
        raise DeployError(f"{path} is a plain ONNX file, not a bundle: a signature covers a bundle's manifest, which it has not; "
                          "export a bundle with `pipeline export RUN` and sign that")
    for message in bundle.warnings() if warn is not None else []:
        warn(message)
    manifest = (bundle.folder / MANIFEST).read_bytes()
    if hashlib.sha256(manifest).hexdigest() != bundle.manifest_sha256:
        raise DeployError(f"{bundle.folder / MANIFEST} changed while it was being signed; sign it again")
    identity = key_id(key.public_key())
    document = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "Ed25519",
        "signed_file": MANIFEST,
        "manifest_sha256": bundle.manifest_sha256,
        "key_id": identity,
        "signature": base64.b64encode(key.sign(manifest)).decode("ascii"),
    }
    target = bundle.folder / SIGNATURE
    try:
        _commit({target: ((json.dumps(document, indent=2) + "\n").encode("utf-8"), 0o644)})
    except OSError as error:
        raise DeployError(f"cannot write the signature {target}: {error}") from None
    return target, identity
