# The two commands of the README: `make run` (the sandbox) and `make test` (every test).
# Each installs what it needs first, so both work on a fresh machine.

VENV   ?= .venv
PYTHON := $(VENV)/bin/python
BUF    := tools/node/node_modules/.bin/buf
TOOLS  := tools/bin
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# Code generators for the clients, pinned. Each must match the runtime its package pins (a test checks):
# protoc-gen-go is google.golang.org/protobuf in clients/go/go.mod; PROTOC_VERSION (protoc, whose
# built-in `java` generator makes the protobuf-java code) is protobuf.version in clients/java/pom.xml;
# GRPC_JAVA_VERSION is grpc.version there. protoc-gen-es is a devDependency of clients/typescript.
# protoc-gen-prost and protoc-gen-tonic 0.5 write code for prost and tonic 0.14, as clients/rust/Cargo.toml pins.
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOC_VERSION := 4.36.2
GRPC_JAVA_VERSION := 1.83.1
PROTOC_GEN_PROST_VERSION := 0.5.0
PROTOC_GEN_TONIC_VERSION := 0.5.0
# The native binaries come from Maven Central, one per platform (classifier os-arch, e.g. linux-x86_64).
MAVEN_CLASSIFIER := $(subst darwin,osx,$(shell uname -s | tr A-Z a-z))-$(subst arm64,aarch_64,$(subst aarch64,aarch_64,$(shell uname -m)))
MAVEN_COPY := mvn --batch-mode --quiet -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
	-Dmdep.stripVersion=true -DoutputDirectory=$(TOOLS)

GENERATORS := $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/protoc $(TOOLS)/protoc-gen-grpc-java \
	$(TOOLS)/protoc-gen-prost $(TOOLS)/protoc-gen-tonic
TS_CLIENT  := clients/typescript/node_modules/.installed
RUST_CLIENT := clients/rust/target/.fetched
JAVA_STUBS := clients/java/src/main/java/io/github/brokergateway/v1
PYTHON_STUBS := service/broker_gateway/v1 clients/python/src/broker_gateway_client/v1

.PHONY: run test generate lint python-lint breaking release-api deps redis-server-installed

run: $(VENV)/.installed
	$(VENV)/bin/broker-gateway sandbox $(SANDBOX_ARGS)

# A deployment of several replicas on loopback to watch work (docs/deploy.md): PostgreSQL, Redis, the
# sandbox's simulators and three gateway replicas with --workers; Ctrl-C stops it all.
.PHONY: cluster
cluster: $(VENV)/.installed
	PYTHON=$(PYTHON) examples/cluster/run.sh

test: deps python-lint
	$(PYTHON) -m pytest $(PYTEST_ARGS)

deps: $(VENV)/.installed $(BUF) tests/oidc_provider/node_modules/.installed $(GENERATORS) $(TS_CLIENT) $(RUST_CLIENT) postgres-server redis-server-installed

# The tests start their own PostgreSQL server (tests/support/postgres.py) from Debian's binaries;
# Debian puts initdb in /usr/lib/postgresql/VERSION/bin, off PATH, so both places are looked at.
.PHONY: postgres-server
postgres-server:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }

# Regenerate every language's stubs from protos/: Python, the server's and the Python client's
# (buf.gen.yaml), then Go, TypeScript, Java and Rust (one template each: see buf.gen.yaml for why). Stale
# Python and Java stubs are removed first because their output roots hold handwritten code too, so buf
# must not `clean` them.
generate: deps
	rm -f $(addsuffix /*_pb2*.py,$(PYTHON_STUBS)) $(addsuffix /*_pb2*.pyi,$(PYTHON_STUBS))
	$(BUF) generate
	$(BUF) generate --template buf.gen.go.yaml
	$(BUF) generate --template buf.gen.typescript.yaml
	rm -rf $(JAVA_STUBS)
	$(BUF) generate --template buf.gen.java.yaml
	$(BUF) generate --template buf.gen.rust.yaml

lint: deps python-lint
	$(BUF) lint

# ruff and mypy, configured in pyproject.toml (the generated stubs are excluded); part of `make test` too.
python-lint: $(VENV)/.installed
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy

# Fails when protos/ breaks callers of the last released API (protos-released/; `make test` runs it too).
breaking: deps
	$(BUF) breaking protos --against protos-released

# When cutting a release: the API as released becomes the baseline `breaking` compares against.
release-api:
	rm -rf protos-released/broker_gateway
	cp -R protos/broker_gateway protos-released/

# The benchmark harness (benchmarks/README.md): builds ghz and installs nginx, PostgreSQL and
# redis-server when missing (the last two as for `make test`), runs everything on loopback in both
# load profiles (one HTTP/2 connection, then 8), prints a table for each and writes
# benchmarks/results/latest.json and latest.many.json (~80 minutes).
# `make bench BENCH_QUICK=1` is a short run for development; BENCH_ARGS passes more options.
.PHONY: bench
bench: $(VENV)/.installed postgres-server redis-server-installed
	$(PYTHON) -m benchmarks.run $(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)

$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# `npm ci`, never `npm install`: install rewrites package-lock.json (it adds what this machine resolves
# differently), so a test run would leave the clone changed. The lock holds every platform's buf package.
$(BUF): tools/node/package.json tools/node/package-lock.json
	cd tools/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

tests/oidc_provider/node_modules/.installed: tests/oidc_provider/package.json tests/oidc_provider/package-lock.json
	cd tests/oidc_provider && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The TypeScript client's dependencies, protoc-gen-es and the compiler included.
$(TS_CLIENT): clients/typescript/package.json clients/typescript/package-lock.json
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The Rust client's crates, as Cargo.lock pins them (the tests build it offline from there).
$(RUST_CLIENT): clients/rust/Cargo.toml clients/rust/Cargo.lock
	cd clients/rust && cargo fetch --locked
	mkdir -p $(@D) && touch $@

redis-server-installed:
	@command -v redis-server >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends redis-server; }

# The generators are rebuilt whenever this file changes, so a new pin takes effect at once.
$(TOOLS)/protoc-gen-go: Makefile
	GOBIN=$(CURDIR)/$(TOOLS) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	touch $@

$(TOOLS)/protoc-gen-go-grpc: Makefile
	GOBIN=$(CURDIR)/$(TOOLS) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	touch $@

# The Rust generators build from crates.io with cargo (about a minute); --locked uses their own lock files.
$(TOOLS)/protoc-gen-prost: Makefile
	cargo install --quiet --locked --force --root tools protoc-gen-prost@$(PROTOC_GEN_PROST_VERSION)
	touch $@

$(TOOLS)/protoc-gen-tonic: Makefile
	cargo install --quiet --locked --force --root tools protoc-gen-tonic@$(PROTOC_GEN_TONIC_VERSION)
	touch $@

$(TOOLS)/protoc: Makefile
	$(MAVEN_COPY) -Dartifact=com.google.protobuf:protoc:$(PROTOC_VERSION):exe:$(MAVEN_CLASSIFIER)
	mv $(TOOLS)/protoc-$(MAVEN_CLASSIFIER).exe $@
	chmod +x $@
	touch $@

$(TOOLS)/protoc-gen-grpc-java: Makefile
	$(MAVEN_COPY) -Dartifact=io.grpc:protoc-gen-grpc-java:$(GRPC_JAVA_VERSION):exe:$(MAVEN_CLASSIFIER)
	mv $(TOOLS)/protoc-gen-grpc-java-$(MAVEN_CLASSIFIER).exe $@
	chmod +x $@
	touch $@
