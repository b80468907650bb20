# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
OUT    ?= out/demo

.PHONY: setup test demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch/torchvision pinned to the pair that lies on this machine kind's disk (CPU works)
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	# the full set: the core, the render extra (bpy: Python 3.11, numpy 1.x), Ray, pytest
	$(PY) -m pip install --quiet -e ".[render,ray,test]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q

# The main job, end to end on the built-in procedural chairs: shapes -> anomalies + photo-real
# queries -> reference views -> checks and Table 1 -> a contact sheet -> a tiny CMT trained on the
# train shapes and scored on the unseen test shapes (a few minutes on 2 cores at 128x128).
demo: setup
	$(VENV)/bin/brokenchairs shapes synth --count 6 --seed 0 --out $(OUT)/chairs
	$(VENV)/bin/brokenchairs shapes preview $(OUT)/chairs --out $(OUT)/chairs.png
	$(VENV)/bin/brokenchairs generate --shapes $(OUT)/chairs --anomaly all --resolution 128 --split-ratios 0.5,0,0.5 --out $(OUT)/dataset
	$(VENV)/bin/brokenchairs render-views --out $(OUT)/dataset --resolution 128
	$(VENV)/bin/brokenchairs validate $(OUT)/dataset
	$(VENV)/bin/brokenchairs stats $(OUT)/dataset
	$(VENV)/bin/brokenchairs preview $(OUT)/dataset --out $(OUT)/queries.png
	rm -rf $(OUT)/run
	$(VENV)/bin/brokenchairs train --model cmt --data $(OUT)/dataset --out $(OUT)/run --preset tiny --set val_split=test
	$(VENV)/bin/brokenchairs eval --model cmt --checkpoint $(OUT)/run/last.pt --data $(OUT)/dataset --split test --out $(OUT)/run/eval
	$(VENV)/bin/brokenchairs report $(OUT)/run/eval --out $(OUT)/table2.md

clean:
	rm -rf $(VENV) out .pytest_cache
