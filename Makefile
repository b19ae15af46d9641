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
# The demo page's front end (docs/demo.md): `npm ci` when the lockfile changed, `vite build`
# when a source changed; each step leaves a stamp named by the checksum of what it used.
FRONT := demo/frontend
FRONT_SOURCES := $(FRONT)/package.json $(FRONT)/package-lock.json $(FRONT)/vite.config.js \
	$(sort $(wildcard $(FRONT)/src/*))
NPM_STAMP := $(FRONT)/node_modules/.ci-$(shell cat $(FRONT)/package-lock.json | cksum | cut -d' ' -f1)
DEMO_STAMP := demo/static/demo/.built-$(shell cat $(FRONT_SOURCES) | cksum | cut -d' ' -f1)

.PHONY: install run test lint format demo

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

$(NPM_STAMP): $(FRONT)/package-lock.json
	cd $(FRONT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(DEMO_STAMP): $(FRONT_SOURCES)
	@if command -v npm >/dev/null; then \
		$(MAKE) --no-print-directory $(NPM_STAMP) && cd $(FRONT) && npm run -s build -- --logLevel warn \
		&& touch ../../$@; \
	else \
		echo "npm not found: the demo page at / is not built (the API and sockets run; docs/demo.md)"; \
	fi

demo: $(DEMO_STAMP)

run: install demo
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
