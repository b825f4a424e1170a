"""Where attachment bytes live: the instance folder (default) or an S3-compatible bucket.

Both stores name a file by its SHA-256 (``ab/cd/<sha256>``), so storing the same bytes twice
keeps one copy and a name never comes from user input. ``ATTACHMENTS_STORAGE = "s3"`` (with
``S3_BUCKET``, ``S3_ENDPOINT_URL``, ``S3_ACCESS_KEY``, ``S3_SECRET_KEY``, ``S3_REGION``) shares the
files between several app servers; the local store is what ``yiti backup`` archives.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from flask import current_app

CHUNK = 1 << 16
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class MissingFile(FileNotFoundError):
    """The store has no file for a hash a row refers to (lost, or not restored from a backup)."""


def key_for(sha256: str) -> str:
    """``ab/cd/<sha256>``: the relative name of a content hash (checked: it is never user input)."""
    if not _SHA256.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


class LocalStorage:
    """Files under ``<instance>/attachments/`` (outside the web root; what backups archive)."""

    name = "local"

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / key_for(sha256)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, sha256: str, source: BinaryIO, content_type: str = "application/octet-stream") -> None:
        """Store ``source`` (read from its start) under its hash; a file already there is kept.

        Written to a temporary file beside the target and renamed into place, so a reader never
        sees half a file and two servers storing the same content at once both succeed.
        """
        target = self.path(sha256)
        if target.is_file():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        source.seek(0)
        fd, draft = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
            os.chmod(draft, 0o640)
            os.replace(draft, target)
        finally:
            if os.path.exists(draft):
                os.unlink(draft)

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise MissingFile(key_for(sha256)) from None

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)


class S3Storage:
    """Objects ``ab/cd/<sha256>`` in an S3-compatible bucket (AWS, MinIO, Ceph, OSS/COS gateways)."""

    name = "s3"

    def __init__(self, bucket: str, endpoint_url: str | None = None, access_key: str | None = None,
                 secret_key: str | None = None, region: str | None = None):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None, region_name=region or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        )

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key_for(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def put(self, sha256: str, source: BinaryIO, content_type: str = "application/octet-stream") -> None:
        if self.exists(sha256):
            return
        source.seek(0)
        self.client.upload_fileobj(source, self.bucket, key_for(sha256), ExtraArgs={"ContentType": content_type})

    def open(self, sha256: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key_for(sha256))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise MissingFile(key_for(sha256)) from None
            raise

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key_for(sha256))


def storage():
    """The app's attachment store, made once per app from the settings."""
    app = current_app._get_current_object()
    store = app.extensions.get("yiti.attachments.storage")
    if store is None:
        settings = app.config["YITI"]
        if settings["ATTACHMENTS_STORAGE"] == "s3":
            if not settings["S3_BUCKET"]:
                raise RuntimeError("ATTACHMENTS_STORAGE is 's3' but S3_BUCKET is not set")
            store = S3Storage(settings["S3_BUCKET"], settings["S3_ENDPOINT_URL"], settings["S3_ACCESS_KEY"],
                              settings["S3_SECRET_KEY"], settings["S3_REGION"])
        else:
            store = LocalStorage(Path(app.instance_path) / "attachments")
        app.extensions["yiti.attachments.storage"] = store
    return store
