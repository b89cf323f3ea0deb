"""Checking a bundle's Ed25519 signature (``manifest.json.sig``) against a deployer's public key.

The hashes say the files are the ones the manifest lists; only a signature says who wrote the
manifest. This is the checking side, kept apart from :mod:`pipeline_core_deploy.signing` (the
producer's side) because it must run inside a bundle's own ``predict.py``: ``cryptography`` is
imported only when a key is given, so a bundle without one needs only NumPy and onnxruntime.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from pipeline_core_deploy.common import MANIFEST, SIGNATURE, DeployError, _read_json, _sha256


def ed25519_api() -> Any:
    """cryptography's exceptions, serialization and ed25519 modules, imported on first use."""
    try:
        from cryptography import exceptions
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise DeployError("checking a bundle's signature needs the 'cryptography' package: pip install cryptography") from None
    return exceptions, serialization, ed25519


def key_id(public_key: Any) -> str:
    """A short name for an Ed25519 public key: the first 16 hex digits of the sha256 of its raw bytes."""
    _, serialization, _ = ed25519_api()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _sha256(raw)[:16]


def load_public_key(path: Path) -> Any:
    """The Ed25519 public key in ``path`` (PEM, as ``pipeline keygen`` writes it, or OpenSSH)."""
    exceptions, serialization, ed25519 = ed25519_api()
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DeployError(f"--verify-key: public key file not found: {path}") from None
    except OSError as error:
        raise DeployError(f"--verify-key: cannot read {path}: {error}") from None
    if b"PRIVATE KEY" in data:
        raise DeployError(f"--verify-key: {path} is a private key; checking a signature takes the public key "
                          "(the .pub file `pipeline keygen` wrote beside it), and the private key stays with whoever signs")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_ssh_public_key(data)
    except (ValueError, TypeError, exceptions.UnsupportedAlgorithm) as error:
        raise DeployError(f"--verify-key: {path} is not a public key in PEM or OpenSSH format ({error})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise DeployError(f"--verify-key: {path} is a {type(key).__name__} key; bundles are signed with Ed25519 keys (`pipeline keygen`)")
    return key


def verify_signature(folder: Path, manifest: bytes, key_path: Path) -> str:
    """Check that ``manifest`` (the bytes of ``folder``'s manifest) carries a valid signature by the
    public key in ``key_path``; returns the key's id. Raises :class:`DeployError` otherwise."""
    key = load_public_key(key_path)
    exceptions, _, _ = ed25519_api()
    wanted = key_id(key)
    path = folder / SIGNATURE
    if not path.is_file():
        raise DeployError(f"{folder} is not signed (no {SIGNATURE} beside its manifest), and --verify-key {key_path} accepts only "
                          "bundles signed with its private key (`pipeline sign BUNDLE --key PRIVATE_KEY`); refusing it")
    document = _read_json(path, "the bundle's signature")
    try:
        signature, signer = base64.b64decode(document["signature"], validate=True), str(document["key_id"])
    except (KeyError, TypeError, ValueError):
        raise DeployError(f"{path} is not a signature written by `pipeline sign`: expected \"key_id\" and a base64 \"signature\"") from None
    if signer != wanted:
        raise DeployError(f"{path}: the bundle was signed with key {signer}, not with {key_path} (key {wanted}); "
                          "refusing a bundle signed by someone else")
    try:
        key.verify(signature, manifest)
    except exceptions.InvalidSignature:
        changed = document.get("manifest_sha256") not in (None, _sha256(manifest))
        reason = f"{MANIFEST} was changed after it was signed" if changed else "the signature does not match the manifest (was the signature file edited?)"
        raise DeployError(f"{path}: {reason}; refusing the bundle (checked with {key_path}, key {wanted})") from None
    return wanted
