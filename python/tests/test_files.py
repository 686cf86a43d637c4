"""Job.get_file with delete_after_read takes the value out of the store
into a local file: whatever fails, the value is in one place or the other,
never in neither."""

import os

import pytest

import pocket

KiB = 1 << 10


def test_get_file_delete_after_read_that_cannot_place_dst_loses_nothing(cluster, tmp_path):
    """dst names a directory (a slip of the caller's): the file cannot be
    put there, so get_file fails; the value must still be in the store (or
    its bytes on disk). get_file deleted the version read before
    os.replace failed, then removed its temporary file: the value was in
    neither."""
    with cluster.client(chunk_size=64 * KiB) as c, c.register_job("files-dar") as j:
        data = os.urandom(200 * KiB + 3)
        j.put("f", data)
        dst = tmp_path / "out"
        dst.mkdir()
        try:
            j.get_file("f", dst, delete_after_read=True)
        except OSError:
            pass
        on_disk = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == data]
        assert j.exists("f") or on_disk, "the value is gone from the store and from the disk"
        if j.exists("f"):
            assert j.get("f") == data


def test_get_file_keeps_the_files_mode(cluster, tmp_path):
    """get_file gives an existing file its own mode back (a new one gets
    open()'s: 0666 less the umask). Before, an existing 0640 file took the
    new file's mode (the Go SDK's TestGetFileKeepsTheFilesMode)."""
    with cluster.client() as c, c.register_job("files-mode") as j:
        j.put("f", b"value")
        old = tmp_path / "old"
        old.write_bytes(b"before")
        os.chmod(old, 0o640)
        j.get_file("f", old)
        assert old.read_bytes() == b"value"
        assert oct(os.stat(old).st_mode & 0o777) == oct(0o640)
        probe = tmp_path / "probe"
        probe.write_bytes(b"")
        new = tmp_path / "new"
        j.get_file("f", new)
        assert os.stat(new).st_mode & 0o777 == os.stat(probe).st_mode & 0o777


def test_get_file_into_a_missing_directory_names_it(job, tmp_path):
    """A download into a directory that does not exist names it and dst,
    and reads nothing; before, the FileNotFoundError named the temporary
    file (".x.part-19831-..."), and the module API's get none at all (a new
    user's trial)."""
    job.put("f", b"abc")
    dst = tmp_path / "nodir" / "x"
    with pytest.raises(FileNotFoundError) as e:
        job.get_file("f", dst)
    assert str(tmp_path / "nodir") in str(e.value) and e.value.filename == str(dst), str(e.value)
    assert ".part-" not in str(e.value), str(e.value)
    assert not (tmp_path / "nodir").exists()
