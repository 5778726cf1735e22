# Each target works alone on a fresh clone: it creates .venv and installs requirements.txt when needed.
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: help repro test test-fast architecture tune ui draw serve server bench bench-quick bench-loop chromium postgresql clean
UI_PORT ?= 5000
DRAW_PORT ?= 8000
SERVE_PORT ?= 5001
SERVER_PORT ?= 5002
JOBS ?= 1
.DEFAULT_GOAL := help
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

help:  ## this list (make alone shows it too)
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:[^#]*## /\t/' | expand -t 14

repro: $(VENV)/installed  ## run the pipeline: data, CNN, ONNX export, photo check, baseline, comparison
	dvc repro

test: $(VENV)/installed chromium postgresql  ## the whole test suite on every core (at most 4), the 15 slowest listed; installs Debian's chromium and PostgreSQL with apt (root or sudo) when missing
	python -m pytest --numprocesses auto --maxprocesses 4 --dist loadscope --durations=15

test-fast: $(VENV)/installed  ## the inner loop: every unit and in-process test, not the end-to-end ones (-m "not e2e"), in about a minute
	python -m pytest -m "not e2e" --numprocesses auto --maxprocesses 4 --durations=5

architecture: $(VENV)/installed  ## docs/architecture.md from the code and dvc.yaml: the layers, and the stages an edit to each module reruns
	python -m tests.architecture > docs/architecture.md

tune: $(VENV)/installed  ## the hyperparameter search of tune.yaml, JOBS trials at once, each a DVC experiment (a rerun continues it)
	python -m pipeline tune --jobs $(JOBS)

ui: $(VENV)/installed  ## MLflow UI on the pipeline's store at 127.0.0.1:$(UI_PORT); prints the runs table's address (CNN accuracy columns shown)
	python -m pipeline ui --port $(UI_PORT)

draw: $(VENV)/installed  ## a page to draw a digit on and watch the prediction live, at 127.0.0.1:$(DRAW_PORT)
	python -m pipeline draw --port $(DRAW_PORT)

serve: $(VENV)/installed  ## the registry's champion CNN over REST (mlflow models serve) at 127.0.0.1:$(SERVE_PORT)
	python -m pipeline serve --port $(SERVE_PORT)

server: $(VENV)/installed postgresql  ## a team's MLflow server on PostgreSQL, passwords required (users: python -m pipeline server user add), at 127.0.0.1:$(SERVER_PORT)
	python -m pipeline server --port $(SERVER_PORT)

bench: $(VENV)/installed  ## every preset of bench/presets.yaml on its seeds, test set scored once each (66 min to two hours on 2 cores) -> metrics/bench.json; DATASET=fashion_mnist: its presets file -> bench-fashion_mnist.json there
	python bench/bench.py $(if $(DATASET),--dataset $(DATASET))

bench-quick: $(VENV)/installed  ## the same on 2,000 images, 1 epoch, one seed each: a smoke test of minutes -> bench/quick/
	python bench/bench.py --quick $(if $(DATASET),--dataset $(DATASET))

bench-loop: $(VENV)/installed  ## the experiment loop's budgets on a fresh clone of the checkout: dvc repro against training, then a 1-epoch experiment outside training (about 12 min) -> bench/loop.json
	python bench/loop.py

$(VENV)/installed: requirements.txt
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

chromium:  ## Debian's chromium, for the draw page's browser test (installed with apt when missing)
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

postgresql:  ## Debian's PostgreSQL, for make server and its test (installed with apt when missing)
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql; }

clean:  ## remove outputs that dvc repro recreates (the download cache stays)
	rm -rf data/raw data/processed models
