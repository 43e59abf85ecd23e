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
SCHEMATHESIS_VENV := $(VENV)/schemathesis
SCHEMATHESIS_STAMP := $(SCHEMATHESIS_VENV)/.installed-$(shell sha256sum local/requirements-schemathesis.txt | cut -c1-12)

# Offline tools must never try to reach AWS, and the SDK needs a region to sign locally.
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
export CARGO_TERM_COLOR ?= auto

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: venv
venv: $(VENV_STAMP) ## Install the pinned Python tools (moto, SAM CLI, cfn-lint, cargo-lambda) into .venv

# uv does the installing: pinned in local/requirements.txt and bootstrapped with pip, it
# installs the requirements in about 20 seconds where pip alone took 80, which a cold
# `make test` or `make bench` feels. It installs the other venvs below too.
UV := $(VENV)/bin/uv
UV_INSTALL = $(UV) pip install --quiet --python
$(VENV_STAMP): local/requirements.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "$$(grep -m1 '^uv==' local/requirements.txt)"
	$(UV_INSTALL) $(VENV)/bin/python -r local/requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

# checkov pins an older boto3 than moto and the SAM CLI, so it gets a venv of its own.
$(CHECKOV_STAMP): local/requirements-checkov.txt | $(VENV_STAMP)
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(UV_INSTALL) $(CHECKOV_VENV)/bin/python -r local/requirements-checkov.txt
	@rm -f $(CHECKOV_VENV)/.installed-*
	@touch $@

# schemathesis (the API fuzzer of `make reliability`) pins a newer jsonschema than the SAM CLI.
$(SCHEMATHESIS_STAMP): local/requirements-schemathesis.txt | $(VENV_STAMP)
	@test -x $(SCHEMATHESIS_VENV)/bin/python || $(PYTHON) -m venv $(SCHEMATHESIS_VENV)
	$(UV_INSTALL) $(SCHEMATHESIS_VENV)/bin/python -r local/requirements-schemathesis.txt
	@rm -f $(SCHEMATHESIS_VENV)/.installed-*
	@touch $@

.PHONY: nextest
nextest:
	@cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest@0.9.143

# cargo-deny checks the supply chain against deny.toml. Pinned like cargo-nextest; about
# two minutes to build the first time.
CARGO_DENY_VERSION := 0.20.2
.PHONY: cargo-deny
cargo-deny:
	@cargo deny --version 2>/dev/null | grep -qF '$(CARGO_DENY_VERSION)' || cargo install --locked cargo-deny@$(CARGO_DENY_VERSION)

.PHONY: test
test: venv nextest cargo-deny lint-template functions ## Format check, clippy, supply-chain checks, every test, template lint, sam build
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	# Licenses, duplicate crates and sources (deny.toml). The advisories check needs the
	# RustSec database from GitHub: GitHub CI runs it (.github/workflows/ci.yml).
	cargo deny check licenses bans sources
	# Every test's emulator also checks its DynamoDB fast path against moto's own
	# serializer (local/emulator/moto_launcher.py): a moto upgrade that changes an
	# answer fails here.
	@mkdir -p target && rm -f target/fast-json.diff
	MOTO_CHECK_FAST_JSON=$(CURDIR)/target/fast-json.diff cargo nextest run --workspace --locked --no-fail-fast
	@test ! -s target/fast-json.diff || { echo "the emulator's fast DynamoDB answers differ from moto's:"; head -c 4000 target/fast-json.diff; exit 1; }
	$(MAKE) --no-print-directory emulator-contract
	$(MAKE) --no-print-directory sam-build

# The emulator's guards (local/emulator/): its own tests (DynamoDB's sizing rules, the
# version guard, the speed switch), then the local cloud's contract tests once more with
# every speed-only patch off, so a patch that changes what the emulator answers fails
# here. Two tests stay out of that run because what they check is a speed patch's: a
# connection kept alive across requests, and deletes racing through a 2000-message
# backlog, which plain moto cannot receive before the held messages' visibility lapses.
.PHONY: emulator-contract
emulator-contract: venv nextest
	$(VENV)/bin/python -m unittest discover -s local/emulator -p 'test_*.py'
	LOCAL_EMULATOR_SPEED_PATCHES=off cargo nextest run -p emulator -p lambda-host --locked --no-fail-fast \
	  -E '(package(emulator) | binary_id(lambda-host::event_sources)) and not (test(=a_connection_carries_request_after_request_even_past_an_injected_fault) | test(=concurrent_deletes_remove_exactly_the_messages_they_name))'

.PHONY: lab-test
lab-test: venv nextest functions ## For the workshop: format check, clippy and every test, without the template lint and the arm64 build (about 8 minutes warm on 2 cores)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo nextest run --workspace --locked --no-fail-fast

.PHONY: lint-template
lint-template: venv $(CHECKOV_STAMP) ## Check template.yaml and the CI workflows offline: sam validate --lint, cfn-lint (also on the translated CloudFormation), checkov, workflow schema
	$(SAM) validate --lint --template template.yaml
	$(CFN_LINT) template.yaml
	@mkdir -p target
	$(VENV)/bin/python local/tools/sam_to_cfn.py template.yaml target/template.cfn.json
	$(CFN_LINT) target/template.cfn.json
	# Every skipped check is justified in the resource's Metadata (checkov: skip: comment).
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download
	# The GitHub Actions workflows forks run, and their Dependabot settings, against
	# GitHub's schemas (offline, vendored).
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml

# The arm64 target Lambda runs on. rustup installs it with the toolchain
# rust-toolchain.toml pins, but not into that toolchain when it is already there (nor at
# all with RUSTUP_AUTO_INSTALL=0). cargo-lambda then checks `stable` for it, and builds
# started side by side raced to install it: some found no `std` for aarch64. Installing
# it once, first, for both, leaves them nothing to do.
ARM64 := aarch64-unknown-linux-gnu
.PHONY: arm64-target
arm64-target:
	@rustup target list --installed | grep -qx '$(ARM64)' || rustup target add '$(ARM64)'
	@if rustup toolchain list | grep -q '^stable'; then rustup +stable target list --installed | grep -qx '$(ARM64)' || rustup +stable target add '$(ARM64)'; fi

# One function at a time, not `--parallel`: cargo's lock on the target directory made
# the six builds take turns anyway, and on a machine's first arm64 build their
# simultaneous first runs of zig (cargo-zigbuild's wrappers, zig's cache under
# ~/.cache) raced: one failed with "File exists (os error 17)".
.PHONY: sam-build
sam-build: venv arm64-target ## sam build from a clean build dir, then check one arm64 bootstrap per function
	rm -rf target/sam-build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM) build --build-dir target/sam-build
	$(VENV)/bin/python local/tools/check_bootstraps.py template.yaml target/sam-build

.PHONY: build
build: venv arm64-target ## Release arm64 bootstraps for Lambda, as `sam build` makes them
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --locked

.PHONY: redrive
redrive: ## List a DLQ's messages with their reasons: make redrive DLQ=<url> [TO=<queue url> to move them back]
	@test -n "$(DLQ)" || { echo "usage: make redrive DLQ=<dlq url> [TO=<queue url>]"; exit 2; }
	cargo run --quiet --locked -p proving --bin redrive -- "$(DLQ)" $(if $(TO),--to "$(TO)")

.PHONY: access
access: ## Regenerate docs/access.md (who can do what) from template.yaml, after a change to a role or a policy
	# Not --locked: right after `make new-function`, Cargo.lock gains the new crate.
	UPDATE_DOCS=1 cargo nextest run -p integration-tests -E 'test(=least_privilege::the_access_table_in_the_docs_is_the_templates)'

.PHONY: best-practices
best-practices: ## Move docs/best-practices.md's line ranges to where their code now is
	$(PYTHON) local/tools/refresh_best_practices.py

.PHONY: new-function
new-function: nextest ## Scaffold a function: make new-function NAME=<kebab-name> TRIGGER=sqs|http (docs/fork.md)
	@test -n "$(NAME)" && test -n "$(TRIGGER)" || { echo "usage: make new-function NAME=<kebab-name> TRIGGER=sqs|http"; exit 2; }
	$(PYTHON) local/tools/new_function.py "$(NAME)" "$(TRIGGER)"
	# Its role joins docs/access.md (who can do what).
	$(MAKE) --no-print-directory access

.PHONY: rename
rename: ## Rename the project (stack names, tags, metrics namespace, titles): make rename NAME=<kebab-name>
	@test -n "$(NAME)" || { echo "usage: make rename NAME=<kebab-name>"; exit 2; }
	$(PYTHON) local/tools/rename.py "$(NAME)"

.PHONY: fmt
fmt: ## Format the code
	cargo fmt --all

.PHONY: clean
clean: ## Remove build output and the .venv
	cargo clean
	rm -rf $(VENV) .aws-sam

.PHONY: emulator
emulator: venv ## Run the emulator on :5000 with template.yaml provisioned (for cargo lambda watch/invoke)
	cargo run --quiet -p emulator --bin emulator

.PHONY: functions
functions:
	cargo build --bins --locked

.PHONY: demo
demo: venv functions ## Run the whole pipeline locally: scripted orders, timeline, summary (exit 0 = pass)
	cargo run --quiet --locked -p proving --bin local -- demo

.PHONY: smoke
smoke: ## Prove a deployed stack works: make smoke STACK=<name> [SECONDS=120] (signed orders, their final states, empty DLQs, no alarm in ALARM; your AWS credentials)
	@test -n "$(STACK)" || { echo "usage: make smoke STACK=<stack name> (see samconfig.toml)"; exit 2; }
	cargo run --quiet --locked -p proving --bin local -- smoke "$(STACK)" $(SECONDS)

.PHONY: dev
dev: venv functions ## Run every function locally (API on 127.0.0.1:3000) with readable logs until Ctrl-C
	cargo run --quiet --locked -p proving --bin local -- dev

# The pipeline runs optimised, as on Lambda: the functions and the host in the `timing`
# profile that `make bench` builds too (one build serves both). Debug builds of the
# functions took most of the second core from the emulator and ran about a third slower.
.PHONY: reliability
reliability: venv $(SCHEMATHESIS_STAMP) fuzz ## Load (10 000 orders), duplicates, faults, hostile input and API fuzzing, each audited; writes docs/reliability.md (SCALE=0.2 for a 2 000-order try)
	cargo build --profile timing --locked --bins --workspace
	SCHEMATHESIS=$(SCHEMATHESIS_VENV)/bin/st target/timing/local reliability $(or $(SCALE),1)

# A benchmark, never a test: not part of `make test`. Two builds, one after the other
# (side by side they were slower on 2 cores): for this machine, the functions, the
# hello-world floor and the local host in Cargo.toml's `timing` profile, which are
# timed (cold starts, memory, throughput), while the Python tools install; then the
# arm64 release zips Lambda gets, which are sized. Then the measurements, into
# docs/performance.md. The marks in target/bench/ let the run report how long each
# phase took (its own goal: 15 minutes from a fresh clone).
.PHONY: bench
bench: ## Measure init, package size, memory, AWS requests per order, throughput and cost; writes docs/performance.md (ORDERS=300)
	@mkdir -p target/bench && rm -f target/bench/*-built && date +%s > target/bench/started
	cargo fetch --locked
	$(MAKE) --no-print-directory venv & venv=$$!; \
	cargo build --profile timing --locked --bins --workspace; \
	wait $$venv
	@date +%s > target/bench/timing-built
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --locked --output-format zip
	@date +%s > target/bench/arm64-built
	target/timing/local bench $(or $(ORDERS),300)

# What each release-profile and dependency-feature choice buys: create-order built for
# arm64 once as committed and once per choice turned back (9 builds, about 25 minutes on
# 2 cores), into docs/release-profile.md. Too slow for every `make bench`: run it when
# the profile or the dependencies change.
.PHONY: bench-choices
bench-choices: venv ## Measure what each release-profile and feature choice buys (about 25 min); writes docs/release-profile.md
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo run --quiet --locked -p proving --bin local -- bench-choices

# cargo fuzz needs nightly Rust; its build goes to target/fuzz, its findings to
# shared/fuzz/artifacts. FUZZ_SECONDS per target (default 60). No sanitizer: the code is
# safe Rust, so AddressSanitizer would find nothing a panic does not, at twice the build.
.PHONY: fuzz
fuzz: ## Fuzz request parsing and event decoding with cargo fuzz for FUZZ_SECONDS each (nightly Rust)
	rustup toolchain list | grep -q ^nightly || rustup toolchain install nightly --profile minimal
	cargo +nightly fuzz --version >/dev/null 2>&1 || cargo +nightly install --locked cargo-fuzz@0.13.2
	@mkdir -p target/fuzz/corpus/order_request target/fuzz/corpus/event_envelope
	# --fuzz-dir: cargo-fuzz otherwise looks for fuzz/ at the workspace root, not here.
	cd shared/fuzz && for t in order_request event_envelope; do \
	  CARGO_TARGET_DIR=$(CURDIR)/target/fuzz cargo +nightly fuzz run --fuzz-dir . --sanitizer none $$t \
	    $(CURDIR)/target/fuzz/corpus/$$t seeds/$$t -- -max_total_time=$(or $(FUZZ_SECONDS),60) -max_len=4096 \
	    2>&1 | tee $(CURDIR)/target/fuzz/$$t.log | grep -E '^(#[0-9]+.*(DONE|pulse)|Done|==|SUMMARY|thread)' ; \
	  test $${PIPESTATUS[0]} -eq 0 || { echo "fuzz target $$t found a crash: see shared/fuzz/artifacts/$$t"; exit 1; }; \
	done

# ---------------------------------------------------------------- workshop
# docs/workshop/: each lab ends with `make lab-check LAB=<n>`, its checkpoint.
# tests/integration/workshop.rs checks that every checkpoint selects tests that exist and
# that every lab's solution (docs/workshop/solutions/) passes it.

# Checkpoints select packages with `-p`, never `--workspace`: the workshop test runs them
# in a copy of the repository that shares target/, and `-p integration-tests` builds the
# function crates as libraries only. A `--workspace` build there would write the copy's
# function binaries (with a lab's deliberate break in them) over the repository's own in
# target/debug/, under the feet of the tests running beside it.
LAB_NEXTEST := cargo nextest run --no-tests=fail --no-fail-fast

.PHONY: lab-check
lab-check: ## Check a workshop lab (docs/workshop/): make lab-check LAB=<1-8>
	@case "$(LAB)" in [1-8]) ;; *) echo "usage: make lab-check LAB=<1-8> (the labs: docs/workshop/README.md)"; exit 2;; esac
	@$(MAKE) --no-print-directory lab-$(LAB)-check

.PHONY: lab-1-check lab-2-check lab-3-check lab-4-check lab-5-check lab-6-check lab-7-check lab-8-check
# Lab 1: the demo passes, and one order is followed through every function by its logs.
lab-1-check: venv nextest functions
	$(LAB_NEXTEST) -p proving -p lambda-host -E 'test(=the_demo_passes) | test(=one_order_is_followed_through_every_function_by_its_json_logs_and_metrics)'

# Lab 2: the gift-message tests the lab adds, in the domain crate and end to end.
lab-2-check: venv nextest
	$(LAB_NEXTEST) -p domain -p integration-tests -E 'test(gift_message)'

# Lab 3: every delivery test: duplicates, out-of-order events, poison messages.
lab-3-check: venv nextest
	$(LAB_NEXTEST) -p integration-tests -E 'test(/^deliveries::/)'

# Lab 4: poison messages reach the DLQ with their reasons, and the redrive tool.
lab-4-check: venv nextest
	$(LAB_NEXTEST) -p integration-tests -E 'test(/^deliveries::/) & test(/poison|hostile|redrive/)'

# Lab 5: the scaffolded function (NAME, default shipping) is in template.yaml, its crate's
# tests pass, its role grants what its code uses, and the template, with its queue and
# subscription, provisions on the emulator (every integration test's harness does that).
lab-5-check: venv nextest
	@name="$(or $(NAME),shipping)"; \
	test -d "functions/$$name" || { echo "functions/$$name does not exist: run make new-function NAME=$$name TRIGGER=sqs first"; exit 1; }; \
	id="$$($(PYTHON) -c 'import sys; print("".join(w.capitalize() for w in sys.argv[1].split("-")))' "$$name")Function"; \
	grep -q "^  $$id:" template.yaml || { echo "template.yaml has no $$id"; exit 1; }; \
	echo "template.yaml declares $$id"
	# Its binary, for the sample-event check, which runs every consumer of the template
	# in the local host (the others were built by lab 1's `make demo`).
	cargo build --bin "$(or $(NAME),shipping)"
	$(LAB_NEXTEST) -p "$(or $(NAME),shipping)" -p integration-tests -E 'package($(or $(NAME),shipping)) | test(/^least_privilege::/) | test(/^sample_events::/)'

# Lab 6: queues outlast their consumers 6x; docs/sizing.md says what the template deploys.
lab-6-check: venv nextest
	$(LAB_NEXTEST) -p integration-tests -E 'test(/^workshop::sizing_/)'

# Lab 7: what you deploy, checked offline: the template lints and builds for arm64.
lab-7-check: lint-template sam-build

# Lab 8: every function deploys as a canary, rolled back by its own errors alarm.
lab-8-check: venv nextest
	$(LAB_NEXTEST) -p integration-tests -E 'test(/^workshop::canary_/)'
