from pathlib import Path

import numpy as np
import pytest

from pygmatch.data import EMBEDDED_IMAGES, list_images, read_gray

ROOT = Path(__file__).resolve().parents[1]
COCO = ROOT.parent / "shared" / "data" / "coco"


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    return EMBEDDED_IMAGES


@pytest.fixture(scope="session")
def coco_val() -> Path:
    """The shared COCO val images when present (CI has them), else the embedded set."""
    return COCO / "val" if (COCO / "val").is_dir() else EMBEDDED_IMAGES


@pytest.fixture(scope="session")
def image() -> np.ndarray:
    return read_gray(list_images(EMBEDDED_IMAGES)[0])


@pytest.fixture
def readonly_dir(tmp_path) -> Path:
    """A folder no file can be created in. A mode-555 folder when that stops this process; as
    root (which ignores permission bits) ``/sys``, which refuses new files to everyone."""
    d = tmp_path / "readonly"
    d.mkdir()
    d.chmod(0o555)
    try:
        (d / "probe").write_bytes(b"")
    except OSError:
        yield d
        d.chmod(0o755)
        return
    (d / "probe").unlink()
    d.chmod(0o755)
    if not Path("/sys").is_dir():
        pytest.skip("running as root without /sys: no read-only folder to test with")
    yield Path("/sys")


def run_command(main, argv, capsys) -> tuple[int, str, str]:
    """A command's ``main`` run in-process as its console script runs it (one-line errors, exit
    statuses): ``(exit status, stdout, stderr)``."""
    from pygmatch.commands.flags import run_cli

    with pytest.raises(SystemExit) as e:
        run_cli(main, [str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def one_line_error(err: str) -> str:
    """The last line of stderr, checked to be a one-line ``error: ...`` without a traceback."""
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert "error: " in last, err
    return last
