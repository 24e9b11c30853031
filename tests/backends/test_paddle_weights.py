"""Paddle's pickled .pdparams from hostile hands: the reader's unpickler loads no code."""
import os
import pickle

from commands import cli


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_crafted_pdparams_never_runs_code(tmp_path):
    evil = tmp_path / "evil.pdparams"
    evil.write_bytes(pickle.dumps({"features.conv1.weight": _Evil()}))
    proc = cli("convert", str(evil), "--arch", "squeezenet1_1", "--to", "canonical", "-o", str(tmp_path / "o.npz"),
               cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "refusing to load posix.system" in proc.stderr or "refusing to load os.system" in proc.stderr
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "o.npz").exists()
    assert "Traceback" not in proc.stderr
