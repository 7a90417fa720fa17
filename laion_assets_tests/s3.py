"""A real S3-protocol server on 127.0.0.1 for tests: moto's `ThreadedMotoServer`, as s3fs's
own tests use it. Nothing leaves the machine.

`moto_endpoint` (module-scoped) starts the server on an ephemeral port and yields its URL;
`s3` (per test) sets the credentials the code under test reads from the environment (so
s3fs and `settings.storage_options(endpoint)` work unchanged), clears s3fs's instance cache
before and after the test (no listing cache or connection leaks from one test into
another), and creates buckets on request. Bind the fixtures in the test module (an
assignment rather than an import, which ruff would flag as redefined by the parameter)::

    from laion_assets_tests import s3 as s3_server

    moto_endpoint = s3_server.moto_endpoint
    s3 = s3_server.s3

    def test_x(s3: s3_server.S3Server):
        bucket = s3.bucket()  # a fresh, empty bucket
        store = DatasetStore(f"s3://{bucket}/store", storage_options(s3.endpoint))
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance-metadata service
}
# a developer's own AWS configuration must not leak in (profiles, session tokens, endpoints)
UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
         "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


class S3Server:
    """The loopback S3 server of one test: its endpoint, and an s3fs client of its own."""

    def __init__(self, endpoint: str) -> None:
        import s3fs

        self.endpoint = endpoint
        # a client outside fsspec's instance cache: it stands for another process (an
        # uploader, another worker), so the code under test cannot share its listing cache
        self.fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                                    client_kwargs={"endpoint_url": endpoint})

    def bucket(self, prefix: str = "laion-test") -> str:
        """Create a fresh, empty bucket; returns its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.fs.mkdir(name)
        return name

    def upload(self, local: Path, uri: str) -> None:
        """Copy a local file or folder (recursively) to an `s3://` URI."""
        if local.is_dir():
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                self.fs.pipe_file(f"{uri.rstrip('/')}/{path.relative_to(local).as_posix()}",
                                  path.read_bytes())
        else:
            self.fs.pipe_file(uri, local.read_bytes())

    def keys(self, uri: str) -> list[str]:
        """Every object under an `s3://` prefix, as `bucket/key` paths."""
        return sorted(self.fs.find(uri))


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A started ThreadedMotoServer on 127.0.0.1 (ephemeral port); yields its endpoint URL."""
    server_module = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """Credentials in the environment, a clean s3fs instance cache, the server's endpoint."""
    import s3fs

    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield S3Server(moto_endpoint)
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
