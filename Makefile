# Chorus: `make run` serves the embedded default, `make test` runs the whole suite.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
# daphne's own frame and message limits: room for a y-websocket sync at DOC_MAX_BYTES (10 MB)
# + 64 KiB (larger is answered with 1009). The Socket.IO endpoint enforces
# WEBSOCKET_MAX_MESSAGE_BYTES (1 MB) itself.
WS_MAX_BYTES ?= 16777216

.PHONY: install run test lint format

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --if-empty
	$(BIN)/daphne -b $(HOST) -p $(PORT) --websocket-max-message-size $(WS_MAX_BYTES) \
		--websocket-max-frame-size $(WS_MAX_BYTES) config.asgi:application

test: install
	bash scripts/test

lint: install
	$(BIN)/ruff format --check . && $(BIN)/ruff check . && $(BIN)/lint-imports --no-cache \
		&& $(BIN)/mypy

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .
