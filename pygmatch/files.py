"""Writing outputs: every writer goes through these, so that a missing folder is created, a
read-only one, a file in the way or an unsupported extension is one line naming the path, and
nothing is reported as written that was not; ``check_outputs`` is the one rule on what may be
written over (nothing existing without ``--overwrite``, never an input, no two outputs on one path)."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Callable

from .errors import PygmatchError


def short_reason(text: str, limit: int = 160) -> str:
    """The first sentence of an exception's message, for a one-line error: library messages
    (torch's, OpenCV's) run over several sentences and lines. Never cut inside a word."""
    line = next((s.strip() for s in str(text).splitlines() if s.strip()), "")
    m = re.match(r"(.+?[.!?])(\s|$)", line)
    if m:
        line = m.group(1)
    if len(line) <= limit:
        return line
    cut = line.rfind(" ", 0, limit)
    return line[: cut if cut > 0 else limit].rstrip(" ,;:") + " ..."


def _os_reason(e: OSError) -> str:
    return e.strerror or short_reason(str(e))


def _label(path, flag: str | None) -> str:
    return f"{flag} {path}" if flag else str(path)


def _blocker(path: Path) -> Path | None:
    """The first of ``path`` and its parents that exists but is not a folder."""
    return next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)


def _mkdir(path: Path) -> str | None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return _os_reason(e)
    return None


def _probe(folder: Path) -> str | None:
    """Why no file can be created in ``folder``, or None. Trying is the only test: root ignores
    permission bits, and a read-only file system refuses everyone."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".pygmatch-write-test-"):
            pass
    except OSError as e:
        return _os_reason(e)
    return None


def make_folder(path, flag: str | None = None) -> Path:
    """Create folder ``path`` and its parents; a ``PygmatchError`` naming ``flag`` and the path if
    a file is in the way or the folder cannot be created."""
    path = Path(path)
    label = _label(path, flag)
    blocker = _blocker(path)
    if blocker is not None:
        raise PygmatchError(f"{label}: exists and is not a folder" if blocker == path else f"{label}: {blocker} is a file, not a folder")
    reason = _mkdir(path)
    if reason:
        raise PygmatchError(f"{label}: cannot create the folder ({reason})")
    return path


def _missing(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first."""
    return [p for p in (path, *path.parents) if not p.exists()]


def _remove_empty(folders: list[Path]) -> None:
    for p in folders:  # deepest first
        try:
            p.rmdir()
        except OSError:
            break


def writable_folder(path, flag: str | None = None) -> Path:
    """Check before any work that files can be written into folder ``path``: a file in the way,
    a folder that cannot be created or written is a one-line ``PygmatchError``. Folders created
    for the test are removed again (the writers create them when they write)."""
    path = Path(path)
    created = _missing(path)
    make_folder(path, flag)
    try:
        reason = _probe(path)
    finally:
        _remove_empty(created)
    if reason:
        raise PygmatchError(f"{_label(path, flag)}: cannot write into this folder ({reason})")
    return path


def writable_file(path, flag: str | None = None, image: bool = False, example: str | None = None) -> Path:
    """Check before any work that ``path`` can be written as a file: not a folder (``example``: a
    file name to suggest inside it), an image extension OpenCV writes (``image=True``), its folder
    creatable and writable (folders created for the test are removed again)."""
    path = Path(path)
    label = _label(path, flag)
    if path.is_dir():
        raise PygmatchError(f"{label}: is a folder; give a file name" + (f" such as {path / example}" if example else ""))
    if image:
        check_image_extension(path, flag)
    folder = path.parent
    blocker = _blocker(folder)
    if blocker is not None:
        raise PygmatchError(f"{label}: {blocker} is a file, not a folder")
    created = _missing(folder)
    reason = _mkdir(folder)
    if reason:
        _remove_empty(created)
        raise PygmatchError(f"{label}: cannot create the folder {folder} ({reason})")
    try:
        reason = _probe(folder)
    finally:
        _remove_empty(created)
    if reason:
        raise PygmatchError(f"{label}: cannot write into the folder {folder} ({reason})")
    return path


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path once resolved (relative, ``..``, symbolic
    links) or, when both exist, the same file on disk (a hard link)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs: dict, inputs=(), overwrite: bool = False) -> None:
    """The rule for every file a command writes, checked before any work. ``outputs`` maps each
    output flag to its file (None: not asked for) or, for a folder flag, to the list of files it
    will write there. An output that is one of ``inputs`` is refused always, two outputs may not
    share a path, and an existing file is refused unless ``overwrite`` (``--overwrite``). Each
    refusal is a one-line ``PygmatchError`` naming the flag."""
    given = [(flag, Path(p), isinstance(value, (list, tuple))) for flag, value in outputs.items() if value is not None
             for p in (value if isinstance(value, (list, tuple)) else [value])]
    inputs = [Path(p) for p in inputs if p is not None]
    for k, (flag, path, in_folder) in enumerate(given):
        # a file flag: "--out a.png: ...", a folder flag: "--out DIR: a.png ..."
        label, name, other_name = ((_label(path.parent, flag), f"{path.name} ", "folder") if in_folder else
                                   (_label(path, flag), "", "file name"))
        read = next((p for p in inputs if _same_file(path, p)), None)
        if read is not None:
            raise PygmatchError(f"{label}: {name}is one of the inputs ({read}); choose another {other_name}")
        other = next((f for f, p, _ in given[:k] if _same_file(path, p)), None)
        if other is not None:
            raise PygmatchError(f"{label}: {name}is the same file as {other}; give each output its own file name")
        if path.exists() and not overwrite:
            raise PygmatchError(f"{label}: {name}exists; choose another {other_name}, or pass --overwrite to replace it")


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def check_image_extension(path, flag: str | None = None) -> None:
    import cv2  # noqa: PLC0415

    suffix = Path(path).suffix.lower()
    if not suffix or not cv2.haveImageWriter(f"x{suffix}"):
        got = f"extension {suffix!r}" if suffix else "no extension"
        raise PygmatchError(f"{_label(path, flag)}: cannot write an image with {got}; use one of {', '.join(IMAGE_EXTENSIONS[:4])}, ...")


def make_parent_folder(path) -> Path:
    """Create the folder of file ``path``; one line naming the file if it cannot be."""
    path = Path(path)
    blocker = _blocker(path.parent)
    if blocker is not None:
        raise PygmatchError(f"{path}: {blocker} is a file, not a folder")
    reason = _mkdir(path.parent)
    if reason:
        raise PygmatchError(f"{path}: cannot create the folder {path.parent} ({reason})")
    return path.parent


def write_image(path, image) -> Path:
    """``cv2.imwrite`` that creates the folder and raises instead of returning False."""
    import cv2  # noqa: PLC0415

    path = Path(path)
    check_image_extension(path)
    make_parent_folder(path)
    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_ERROR)  # no "[ WARN ] imwrite_(...)" line before ours
    try:
        ok = cv2.imwrite(str(path), image)
    except cv2.error as e:
        raise PygmatchError(f"{path}: could not write the image ({short_reason(str(e).split('error: ')[-1])})") from None
    finally:
        log.setLogLevel(level)
    if not ok:
        reason = _probe(path.parent)
        why = f"cannot write into the folder {path.parent}: {reason}" if reason else "OpenCV imwrite failed"
        raise PygmatchError(f"{path}: could not write the image ({why})")
    return path


def save_figure(fig, path, **kwargs) -> Path:
    """``fig.savefig`` that creates the folder, turns a failure into one line and always closes the figure."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    path = Path(path)
    try:
        make_parent_folder(path)
        fig.savefig(path, **kwargs)
    except OSError as e:
        raise PygmatchError(f"{path}: could not write the figure ({_os_reason(e)})") from None
    except ValueError as e:  # an extension matplotlib has no writer for
        raise PygmatchError(f"{path}: could not write the figure ({short_reason(e)})") from None
    finally:
        plt.close(fig)
    return path


def write_text(path, text: str) -> Path:
    """``Path.write_text`` that creates the folder and turns a failure into one line."""
    path = Path(path)
    make_parent_folder(path)
    try:
        path.write_text(text)
    except OSError as e:
        raise PygmatchError(f"{path}: could not write ({_os_reason(e)})") from None
    return path


def write_with(path, write: Callable[[Path], object], what: str = "") -> Path:
    """Run ``write(path)`` (e.g. ``np.savez``) with the folder created and an ``OSError`` turned
    into one line."""
    path = Path(path)
    make_parent_folder(path)
    try:
        write(path)
    except OSError as e:
        raise PygmatchError(f"{path}: could not write{' ' + what if what else ''} ({_os_reason(e)})") from None
    return path
