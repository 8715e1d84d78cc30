# The two commands of the README: `make run` (the sandbox) and `make test` (every test).
# Each installs what it needs first, so both work on a fresh machine.

VENV   ?= .venv
PYTHON := $(VENV)/bin/python
BUF    := tools/node/node_modules/.bin/buf
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: run test generate lint deps

run: $(VENV)/.installed
	$(VENV)/bin/broker-gateway sandbox

test: deps
	$(PYTHON) -m pytest $(PYTEST_ARGS)

deps: $(VENV)/.installed $(BUF) tests/oidc_provider/node_modules/.installed

# Regenerate every language's stubs from protos/. Stale Python stubs are removed first because
# buf must not `clean` service/ (handwritten code lives there too).
generate: deps
	rm -f service/broker_gateway/v1/*_pb2*.py service/broker_gateway/v1/*_pb2*.pyi
	$(BUF) generate

lint: deps
	$(BUF) lint

$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# `npm install`, not `npm ci`: buf's per-platform optional packages for other systems are not all on
# the registry mirror CI uses, and `npm ci` refuses a lock without them. The lock still pins buf.
$(BUF): tools/node/package.json tools/node/package-lock.json
	cd tools/node && npm install --no-audit --no-fund --loglevel=error
	touch $@

tests/oidc_provider/node_modules/.installed: tests/oidc_provider/package.json tests/oidc_provider/package-lock.json
	cd tests/oidc_provider && npm ci --no-audit --no-fund --loglevel=error
	touch $@
