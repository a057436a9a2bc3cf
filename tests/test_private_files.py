"""Issue 22: the spool and the cost store are private (0700 directories, 0600 files, whatever
the umask), and a directory another local user can change is refused, so planted symlinks
never turn the gateway's writes (often as root) into writes elsewhere (docs/security.md)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_gemini import CostSpanProcessor
from otel_gemini import _attributes as attrs
from otel_gemini._private_dirs import UnsafeDirectoryError, private_directory
from otel_gemini.aggregate import CostStore
from otel_gemini.aggregate._schema import CostStoreError
from otel_gemini.export import LangfuseConfigError, LangfuseExporter
from otel_gemini.export._slots import acquire_slot
from otel_gemini.testing import FakeLangfuse

NOBODY = 65534
as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="another user (nobody) plants the files: needs root"
)


@pytest.fixture
def langfuse() -> Iterator[FakeLangfuse]:
    with FakeLangfuse() as fake:
        yield fake


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory under /tmp that nobody can reach (tmp_path's parents are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="otel-gemini-hostile-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _modes(root: Path) -> dict[str, int]:
    found = {str(root): stat.S_IMODE(os.lstat(root).st_mode)}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = os.path.join(directory, name)
            found[path] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_spool_and_store_are_0700_and_0600_whatever_the_umask(
    umask: int, tmp_path: Path, langfuse: FakeLangfuse
) -> None:
    spool, store_dir = tmp_path / "deep" / "spool", tmp_path / "state" / "otel"
    old = os.umask(umask)
    try:
        exporter = LangfuseExporter(spool_dir=spool, **langfuse.exporter_settings())
        store = CostStore(store_dir / "costs.sqlite3", batch_delay=0.01)
        provider = TracerProvider()
        provider.add_span_processor(CostSpanProcessor(store))
        provider.add_span_processor(exporter.span_processor())
        attributes = {
            attrs.GEN_AI_OPERATION_NAME: "generate_content",
            attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 10,
        }
        provider.get_tracer("t").start_span("generate_content", attributes=attributes).end()
        assert store.force_flush(10_000) and exporter.force_flush(10_000)
        langfuse.wait_for_spans(1)
        modes = {**_modes(tmp_path / "deep"), **_modes(tmp_path / "state")}
        assert any(path.endswith("costs.sqlite3-wal") for path in modes)
        store.shutdown()
        exporter.shutdown()
    finally:
        os.umask(old)
    for path, mode in modes.items():
        expected = 0o700 if os.path.isdir(path) else 0o600
        assert mode == expected, f"{path}: {oct(mode)}"


def _as_nobody(script: str) -> None:
    subprocess.run(
        ["/bin/sh", "-ec", script], user=NOBODY, group=NOBODY, extra_groups=[], check=True
    )


@as_root
@pytest.mark.parametrize("sticky", [False, True])
def test_symlinks_planted_by_another_user_in_a_spool_dir_are_never_followed(
    sticky: bool, shared_tmp: Path, langfuse: FakeLangfuse
) -> None:
    # The victim: root-owned files in a root-only directory.
    victim = shared_tmp / "victim"
    victim.mkdir(mode=0o700)
    files = {name: f"root's {name}\n".encode() for name in ("head", "cursor", "lock", "passwd")}
    for name, content in files.items():
        (victim / name).write_bytes(content)
    # A world-writable directory; another user prepares the spool in it, full of links.
    public = shared_tmp / "public"
    public.mkdir()
    public.chmod(0o1777 if sticky else 0o777)
    spool = public / "spool"
    _as_nobody(
        f"mkdir -m 777 {spool}; ln -s {victim} {spool}/slot-0; "
        f"mkdir -m 777 {spool}/slot-1; ln -s {victim}/passwd {spool}/slot-1/head"
    )

    with pytest.raises(LangfuseConfigError) as refused:
        LangfuseExporter(spool_dir=spool, **langfuse.exporter_settings())

    message = str(refused.value)
    assert "\n" not in message
    if sticky:  # others cannot rename in it: the spool they made is what is refused
        assert f"{spool} is owned by uid {NOBODY}, not this user" in message
    else:
        assert f"{public} is writable by other users without the sticky bit" in message
    for name, content in files.items():
        assert (victim / name).read_bytes() == content
        assert os.stat(victim / name).st_uid == 0
    assert sorted(os.listdir(victim)) == sorted(files)


@as_root
def test_a_spool_under_a_directory_of_another_user_is_refused(shared_tmp: Path) -> None:
    public = shared_tmp / "theirs"
    public.mkdir(mode=0o755)
    os.chown(public, NOBODY, NOBODY)  # they can rename what we create in it

    with pytest.raises(UnsafeDirectoryError, match=f"{public} is owned by uid {NOBODY}"):
        private_directory(public / "spool")
    assert not (public / "spool").exists()


def test_a_world_writable_directory_without_sticky_bit_above_is_refused(tmp_path: Path) -> None:
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o777)

    with pytest.raises(UnsafeDirectoryError, match="writable by other users without the sticky"):
        private_directory(public / "spool" / "slot-0")


@as_root
@pytest.mark.parametrize(("group", "accepted"), [(0, True), (NOBODY, False)])
def test_a_group_writable_directory_above_is_accepted_when_the_group_is_its_owners_own(
    group: int, accepted: bool, tmp_path: Path
) -> None:
    # ~/.local on user-private-group distros (umask 002): 0775, group = the owner's own.
    local = tmp_path / "local"
    local.mkdir()
    os.chown(local, 0, group)  # root's group 0 has no other member; nogroup is not root's
    local.chmod(0o775)

    if accepted:
        assert private_directory(local / "spool" / "slot-0").is_dir()
        CostStore(local / "state" / "costs.sqlite3").shutdown()
    else:
        with pytest.raises(UnsafeDirectoryError, match="writable by its group"):
            private_directory(local / "spool")
        assert not (local / "spool").exists()


@pytest.mark.parametrize("mode", [0o775, 0o2775])
def test_a_group_writable_spool_slot_of_ours_is_made_0700_and_used(
    mode: int, tmp_path: Path
) -> None:
    # An earlier version's slot (umask 002), a Kubernetes volume with fsGroup (2775).
    root = tmp_path / "spool"
    (root / "slot-0").mkdir(parents=True)
    for directory in (root, root / "slot-0"):
        directory.chmod(mode)

    slot = acquire_slot(root, 1)
    try:
        assert slot.directory == root / "slot-0"
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        assert stat.S_IMODE(slot.directory.stat().st_mode) == 0o700
    finally:
        slot.release()


def test_another_writable_directory_is_still_refused_above_and_as_the_spool(
    tmp_path: Path,
) -> None:
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o777)
    with pytest.raises(UnsafeDirectoryError, match="writable by other users without the sticky"):
        private_directory(public / "spool")
    with pytest.raises(UnsafeDirectoryError, match="writable by other users"):
        private_directory(public)
    assert stat.S_IMODE(public.stat().st_mode) == 0o777


def test_a_spool_slot_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    root = private_directory(tmp_path / "spool")
    elsewhere = private_directory(tmp_path / "elsewhere")
    (root / "slot-0").symlink_to(elsewhere)

    with pytest.raises(UnsafeDirectoryError, match="slot-0 is a symlink"):
        private_directory(root / "slot-0", check_above=False)


def test_a_store_path_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"keep me")
    link = tmp_path / "costs.sqlite3"
    link.symlink_to(target)

    with pytest.raises(CostStoreError, match="is a symlink"):
        CostStore(link)
    assert target.read_bytes() == b"keep me"


def test_a_store_directly_in_a_world_writable_directory_is_refused(tmp_path: Path) -> None:
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o1777)  # as /tmp: sticky does not stop others creating costs.sqlite3-wal

    with pytest.raises(CostStoreError, match="writable by other users"):
        CostStore(public / "costs.sqlite3")


# --- Langfuse over plain HTTP ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "warns"),
    [
        ("http://langfuse.internal.example:3000", True),
        ("http://10.1.2.3", True),
        ("https://langfuse.example.com", False),
        ("http://localhost:3000", False),
        ("http://127.0.0.5:3000", False),
        ("http://[::1]:3000", False),
    ],
)
def test_plain_http_langfuse_on_another_host_warns_once(
    url: str, warns: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from otel_gemini import _langfuse_settings

    _langfuse_settings._warned_cleartext.forget_logged()
    for _ in range(2):
        exporter = LangfuseExporter(
            base_url=url, public_key="pk-lf-1", secret_key="sk-lf-1", spool_dir=tmp_path
        )
        exporter.shutdown(0)
    warnings = [r.getMessage() for r in caplog.records if "unencrypted" in r.getMessage()]
    assert len(warnings) == (1 if warns else 0)
    if warns:
        assert url in warnings[0] and "sk-lf-1" not in warnings[0]
