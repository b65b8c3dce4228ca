# mmer: `make repro` runs the pipeline on the demo corpus, `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro test lint bench bench-merge clean-outputs

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "mmer needs Python 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps musicnn==0.1.0  # musicnn's trained weights only (ISC, MTG-UPF)
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/audio_extract.py --json bench/results/audio_extract.json
	$(BIN)/python bench/text_embed.py --json bench/results/text_embed.json
	$(BIN)/python bench/musicnn_embed.py --json bench/results/musicnn_embed.json
	$(BIN)/python bench/long_clip.py --json bench/results/long_clip.json
	$(BIN)/python bench/manifest_scale.py --json bench/results/manifest_scale.json
	$(BIN)/python bench/scaling.py --json bench/results/scaling.json

bench-merge: $(STAMP)  # about 25 minutes on 2 cores: a fake MERGE-sized release through every stage
	$(BIN)/python bench/merge_scale.py --dest /tmp/mmer_merge_scale --json bench/results/merge_scale.json

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests bench && $(BIN)/ruff format --check pipeline tests bench

clean-outputs:
	rm -rf data features models reports
