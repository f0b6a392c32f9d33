import pytest
import torch


@pytest.fixture
def float64():
    """Run a test in float64 (gradient checks), restoring the default dtype afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


class SmallDisk:
    """A real tmpfs of a few MiB mounted at ``path`` (a full disk that is not simulated)."""

    def __init__(self, path):
        self.path = path
        self._filler = path / ".filler"

    def fill(self) -> None:
        """Write a filler file until the filesystem has no free block left."""
        import errno

        with open(self._filler, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
        assert self.free() < 4096

    def free(self) -> int:
        import os

        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def empty(self) -> None:
        """Remove the filler: space again."""
        self._filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (needs root and mount; skipped where the machine does not allow it)."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield SmallDisk(mnt)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
