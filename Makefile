# The project's commands. Each target installs what it needs (pinned) and is safe to run
# twice. `make help` lists them.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
VENV_STAMP := $(VENV)/.installed-$(shell sha256sum local/requirements.txt | cut -c1-12)
PYTHON ?= python3
SAM := $(VENV)/bin/sam
CFN_LINT := $(VENV)/bin/cfn-lint
CARGO_LAMBDA := $(VENV)/bin/cargo-lambda
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell sha256sum local/requirements-checkov.txt | cut -c1-12)

# Offline tools must never try to reach AWS, and the SDK needs a region to sign locally.
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
export CARGO_TERM_COLOR ?= auto

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: venv
venv: $(VENV_STAMP) ## Install the pinned Python tools (moto, SAM CLI, cfn-lint, cargo-lambda) into .venv

$(VENV_STAMP): local/requirements.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r local/requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

# checkov pins an older boto3 than moto and the SAM CLI, so it gets a venv of its own.
$(CHECKOV_STAMP): local/requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r local/requirements-checkov.txt
	@rm -f $(CHECKOV_VENV)/.installed-*
	@touch $@

.PHONY: nextest
nextest:
	@cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest@0.9.143

.PHONY: test
test: venv nextest lint-template functions ## Format check, clippy, every test, template lint, sam build
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo nextest run --workspace --locked --no-fail-fast
	$(MAKE) --no-print-directory sam-build

.PHONY: lint-template
lint-template: venv $(CHECKOV_STAMP) ## Check template.yaml and the CI workflows offline: sam validate --lint, cfn-lint (also on the translated CloudFormation), checkov, workflow schema
	$(SAM) validate --lint --template template.yaml
	$(CFN_LINT) template.yaml
	@mkdir -p target
	$(VENV)/bin/python local/tools/sam_to_cfn.py template.yaml target/template.cfn.json
	$(CFN_LINT) target/template.cfn.json
	# Every skipped check is justified in the resource's Metadata (checkov: skip: comment).
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download
	# The GitHub Actions workflows forks run, against GitHub's schema (offline, vendored).
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

.PHONY: sam-build
sam-build: venv ## sam build from a clean build dir, then check one arm64 bootstrap per function
	rustup target add aarch64-unknown-linux-gnu
	rm -rf target/sam-build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM) build --build-dir target/sam-build --parallel
	$(VENV)/bin/python local/tools/check_bootstraps.py template.yaml target/sam-build

.PHONY: build
build: venv ## Release arm64 bootstraps for Lambda, as `sam build` makes them
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --locked

.PHONY: redrive
redrive: ## List a DLQ's messages with their reasons: make redrive DLQ=<url> [TO=<queue url> to move them back]
	@test -n "$(DLQ)" || { echo "usage: make redrive DLQ=<dlq url> [TO=<queue url>]"; exit 2; }
	cargo run --quiet --locked -p local --bin redrive -- "$(DLQ)" $(if $(TO),--to "$(TO)")

.PHONY: best-practices
best-practices: ## Move docs/best-practices.md's line ranges to where their code now is
	$(PYTHON) local/tools/refresh_best_practices.py

.PHONY: fmt
fmt: ## Format the code
	cargo fmt --all

.PHONY: clean
clean: ## Remove build output and the .venv
	cargo clean
	rm -rf $(VENV) .aws-sam

.PHONY: emulator
emulator: venv ## Run the emulator on :5000 with template.yaml provisioned (for cargo lambda watch/invoke)
	cargo run --quiet -p local --bin emulator

.PHONY: functions
functions:
	cargo build --bins --locked

.PHONY: demo
demo: venv functions ## Run the whole pipeline locally: scripted orders, timeline, summary (exit 0 = pass)
	cargo run --quiet --locked -p local --bin local -- demo

.PHONY: dev
dev: venv functions ## Run every function locally (API on 127.0.0.1:3000) with readable logs until Ctrl-C
	cargo run --quiet --locked -p local --bin local -- dev
