"""Every writer creates missing folders and reports what it could not write (issue #14, item 3):
``pygmatch graph``, the drawing and plot helpers, and the match drawings' titles (item 10)."""
import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from pygmatch.files import save_figure, short_reason, write_image, write_text  # noqa: E402
from pygmatch.data import list_images  # noqa: E402
from pygmatch.errors import PygmatchError  # noqa: E402
from pygmatch.commands.match import main as pygmatch_main
from pygmatch.viz import draw_matches, put_label, side_by_side  # noqa: E402

from .conftest import one_line_error, run_command  # noqa: E402


def pygmatch_command(argv, capsys):
    return run_command(pygmatch_main, argv, capsys)


@pytest.fixture(scope="module")
def image_file(embedded_dir):
    return list_images(embedded_dir)[0]


def graph_args(image_file, out):
    return ["graph", image_file, "--graph", "knn", "--k", 4, "--max-keypoints", 100, "--out", out]


def test_pygmatch_graph_creates_a_missing_folder_and_writes_the_drawing(tmp_path, image_file, capsys):
    out = tmp_path / "not" / "yet" / "graph.png"
    code, stdout, err = pygmatch_command(graph_args(image_file, out), capsys)
    assert code == 0, err
    drawn = cv2.imread(str(out))
    assert drawn is not None and drawn.shape[:2] == cv2.imread(str(image_file)).shape[:2]
    assert "100 keypoints, 400 edges" in stdout and stdout.strip().endswith(f"-> {out}")


def test_pygmatch_graph_refuses_what_it_cannot_write(tmp_path, image_file, readonly_dir, capsys):
    (tmp_path / "a_file").write_text("x")
    cases = [
        (readonly_dir / "graph.png", f"error: --out {readonly_dir / 'graph.png'}: cannot write into the folder {readonly_dir} ("),
        (readonly_dir / "sub" / "graph.png", f"error: --out {readonly_dir / 'sub' / 'graph.png'}: cannot create the folder {readonly_dir / 'sub'} ("),
        (tmp_path / "graph.txt", f"error: --out {tmp_path / 'graph.txt'}: cannot write an image with extension '.txt'; use one of .png, .jpg"),
        (tmp_path / "graph", f"error: --out {tmp_path / 'graph'}: cannot write an image with no extension"),
        (tmp_path, f"error: --out {tmp_path}: is a folder; give a file name"),
        (tmp_path / "a_file" / "graph.png", f"error: --out {tmp_path / 'a_file' / 'graph.png'}: {tmp_path / 'a_file'} is a file, not a folder"),
    ]
    for out, message in cases:
        code, stdout, err = pygmatch_command(graph_args(image_file, out), capsys)
        assert code == 2 and "->" not in stdout, out
        assert one_line_error(err).startswith(message), err
        assert not out.exists() or out.is_dir() or out == tmp_path / "a_file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "readonly"]  # nothing else written


def test_writers_raise_instead_of_returning_false(tmp_path, readonly_dir):
    canvas = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(PygmatchError, match=f"{readonly_dir / 'x.png'}: could not write the image \\(cannot write into the folder"):
        write_image(readonly_dir / "x.png", canvas)
    with pytest.raises(PygmatchError, match="could not write the image"):
        write_image(tmp_path / "empty.png", np.zeros((0, 5), np.uint8))  # OpenCV refuses an empty image
    fig = plt.figure()
    with pytest.raises(PygmatchError, match=f"{readonly_dir / 'plot.png'}: could not write the figure"):
        save_figure(fig, readonly_dir / "plot.png")
    assert not plt.fignum_exists(fig.number)  # closed all the same
    with pytest.raises(PygmatchError, match=f"{readonly_dir / 'm.json'}: could not write"):
        write_text(readonly_dir / "m.json", "{}")
    # and a missing folder is created
    assert cv2.imread(str(write_image(tmp_path / "a" / "b.png", canvas))).shape == (20, 30, 3)
    save_figure(plt.figure(), tmp_path / "c" / "d.png")
    assert (tmp_path / "c" / "d.png").stat().st_size > 500


def test_match_titles_are_drawn_once(image):
    """The title used to be drawn twice (thick dark, then thin white); in OpenCV 5 the glyph advance
    grows with the thickness, so the passes drifted apart ("522/531 correctct")."""
    grey = np.full_like(image, 128)
    title = "default: 522/531 correct"
    canvas = draw_matches(grey, grey, np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2), np.int64), title=title)
    expected, _ = side_by_side(grey, grey)
    x0, y0, x1, y1 = put_label(expected, title)
    np.testing.assert_array_equal(canvas, expected)  # one pass of the text on one box, nothing else
    (w, h), base = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
    assert (x1 - x0, y1 - y0) == (w + 8, h + base + 8)
    box = canvas[y0:y1, x0:x1]
    text_columns = np.nonzero((box > 200).any(axis=(0, 2)))[0]
    assert text_columns.min() <= 6 and text_columns.max() >= w - 2  # the text fills the box once ...
    assert (canvas[:y1 + 2, x1:grey.shape[1]] == 128).all()  # ... and nothing is drawn beyond it (in image 0)


def test_checkpoint_errors_end_at_a_sentence(tmp_path):
    from pygmatch.checkpoint import WEIGHTS, load_model, read_checkpoint

    data = WEIGHTS.read_bytes()  # the shipped candidate graph network
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception) as raw:
        torch.load(tmp_path / "cut.pt", weights_only=False)
    with pytest.raises(PygmatchError) as e:
        read_checkpoint(tmp_path / "cut.pt")
    message = str(e.value)
    reason = message.split("(truncated or corrupt: ", 1)[1][:-1]
    first_line = str(raw.value).splitlines()[0]
    assert first_line.startswith(reason) and reason[-1] in ".!?" and message.endswith(")"), message
    assert "\n" not in message and len(message) < 250
    with pytest.raises(PygmatchError) as e:  # the model loader says the same
        load_model(tmp_path / "cut.pt")
    assert str(e.value) == message
    assert short_reason("It failed. If you trust the source, do this.") == "It failed."
    assert short_reason("word " * 100, limit=20) == "word word word word ..."


def test_pygmatch_match_writes_over_no_input_no_existing_file_and_not_its_own_other_output(tmp_path, image_file, capsys):
    """Issue #32, items 1-4: ``--out in1.png`` overwrote the input photograph, an existing ``--out``
    or ``--json`` was replaced silently, and ``--out same.png --json same.png`` left JSON in the
    drawing. One rule (``pygmatch.files.check_outputs``), checked before any work."""
    import json
    import os
    import shutil

    a, b = shutil.copy(image_file, tmp_path / "a.jpg"), shutil.copy(image_file, tmp_path / "b.jpg")
    photo = a.read_bytes()
    existing, keep = tmp_path / "existing.png", tmp_path / "keep.json"
    existing.write_bytes(b"mine")
    keep.write_text("mine")
    os.link(b, tmp_path / "b-link.jpg")  # another name of an input is the input
    same = tmp_path / "same.png"
    cases = [
        (["--out", a], f"error: --out {a}: is one of the inputs ({a}); choose another file name"),
        (["--out", a, "--overwrite"], f"error: --out {a}: is one of the inputs ({a}); choose another file name"),
        (["--json", tmp_path / "b-link.jpg", "--overwrite"], f"error: --json {tmp_path / 'b-link.jpg'}: is one of the inputs ({b})"),
        (["--out", existing], f"error: --out {existing}: exists; choose another file name, or pass --overwrite to replace it"),
        (["--out", tmp_path / "new.png", "--json", keep], f"error: --json {keep}: exists; choose another file name, or pass --overwrite"),
        (["--out", same, "--json", same], f"error: --json {same}: is the same file as --out; give each output its own file name"),
    ]
    for args, message in cases:
        code, stdout, err = pygmatch_command(["match", a, b, "--method", "nn", *args], capsys)
        assert code == 2 and stdout == "", args
        assert one_line_error(err).startswith(message), (args, err)
    assert a.read_bytes() == photo and existing.read_bytes() == b"mine" and keep.read_text() == "mine"
    assert not same.exists() and not (tmp_path / "new.png").exists()
    code, stdout, err = pygmatch_command(["match", a, b, "--method", "nn", "--out", existing, "--json", keep, "--overwrite"], capsys)
    assert code == 0, err
    assert cv2.imread(str(existing)) is not None and json.loads(keep.read_text())["method"] == "nn"
    assert a.read_bytes() == photo


def test_pygmatch_graph_keeps_its_image_and_an_existing_drawing(tmp_path, image_file, capsys):
    import shutil

    image = shutil.copy(image_file, tmp_path / "photo.jpg")
    photo = image.read_bytes()
    code, _, err = pygmatch_command(graph_args(image, image) + ["--overwrite"], capsys)
    assert code == 2 and one_line_error(err) == f"error: --out {image}: is one of the inputs ({image}); choose another file name"
    drawing = tmp_path / "graph.png"
    assert pygmatch_command(graph_args(image, drawing), capsys)[0] == 0
    first = drawing.read_bytes()
    code, _, err = pygmatch_command(graph_args(image, drawing), capsys)
    assert code == 2 and one_line_error(err) == f"error: --out {drawing}: exists; choose another file name, or pass --overwrite to replace it"
    assert drawing.read_bytes() == first and image.read_bytes() == photo
    code, _, err = pygmatch_command(graph_args(image, drawing) + ["--overwrite"], capsys)
    assert code == 0, err
