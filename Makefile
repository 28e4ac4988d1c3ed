## mlops-kit — the front door. `make` alone lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SPARK_STAMP := $(VENV)/.spark-stamp
KERNEL := mlops-kit
PORT ?= 8000
MLFLOW_PORT ?= 5000
QUALITY_GATE ?= 0.90
CONSTRAINTS ?= constraints.txt
CANARY_VENV := .venv-canary
CANARY_PACKAGES := mlflow scikit-learn pandas papermill nbval

.PHONY: help install demo test test-fast unit-tests notebook-tests lint format lab mlflow-ui serve reset \
	notebooks bench lock train-job package deploy deploy-staging deploy-production deploy-smoke canary canary-versions talk-check system-deps \
	team-up team-down spark-up spark-down

help: ## show this list
	@echo "mlops-kit — make <target>:"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		sed -e 's/\$$(PORT)/$(PORT)/g' -e 's/\$$(MLFLOW_PORT)/$(MLFLOW_PORT)/g' | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[dev]"
	$(BIN)/mlops-kit install-kernel
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the kit with the pinned versions (constraints.txt)

# the Spark extra (pyspark, ~430 MB): the tests and the cluster need it, `make demo` does not
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[dev,spark]"
	@touch $(SPARK_STAMP)

demo: install ## run every notebook headless with papermill and say where the results are
	$(BIN)/mlops-kit pipeline
	@echo
	@$(BIN)/mlops-kit status

test: install $(SPARK_STAMP) system-deps lint unit-tests notebook-tests ## lint, unit/integration tests, and pytest --nbval on the notebooks

system-deps: ## programs the tests drive, from Debian where missing: chromium, PostgreSQL, Prometheus, Java 17
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing from Debian:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "missing:$$missing (Debian/Ubuntu: sudo apt-get install$$missing)"; exit 1; \
	fi

test-fast: install $(SPARK_STAMP) ## the inner loop: lint and the tests not marked slow (under two minutes)
	$(BIN)/ruff check src tests benchmarks
	env -u MLFLOW_TRACKING_URI $(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow" tests

unit-tests: install $(SPARK_STAMP) ## the tests under tests/ (real MLflow, real papermill, a real mlflow server)
	env -u MLFLOW_TRACKING_URI $(BIN)/python -m pytest -n 2 --dist loadfile tests

notebook-tests: install ## pytest --nbval: re-run each committed notebook in a fresh workspace and compare outputs
	@for nb in notebooks/[0-9][0-9]_*.ipynb; do \
		ws=$$(mktemp -d); \
		env -u MLFLOW_TRACKING_URI MLOPS_KIT_WORKSPACE=$$ws MLOPS_KIT_RUNS_DIR=$$ws/runs \
			$(BIN)/python -m pytest --nbval --nbval-sanitize-with notebooks/sanitize.cfg \
			--nbval-kernel-name $(KERNEL) -p no:cacheprovider -q "$$nb"; \
		rc=$$?; rm -rf $$ws; [ $$rc -eq 0 ] || exit $$rc; \
	done

train-job: install ## the scheduled training job: notebook 02 headless; fails if the gate refuses (QUALITY_GATE=0.90)
	$(BIN)/mlops-kit pipeline 02 -p QUALITY_GATE=$(QUALITY_GATE) -p FAIL_ON_REFUSAL=true -p FRESH_START=false \
		-p 'LEVEL0_FEATURES=[]' -p TUNE_TRIALS=0

package: install ## CI's packages in dist/: the kit's wheel and sdist, the champion as a model package (Dockerfile, manifest)
	$(BIN)/python -m build --outdir dist
	$(BIN)/mlops-kit package --dist dist

ENV ?= staging
deploy: install ## CD: make deploy ENV=staging (smoke test + soak), then ENV=production (smoke test, rollback); VERSION=N to choose
	$(BIN)/mlops-kit deploy --env $(ENV) $(if $(VERSION),--version $(VERSION)) $(EXTRA)

deploy-staging: ## CD, first step: make deploy ENV=staging (deploy.yml's staging job; VERSION=N to choose)
	@$(MAKE) --no-print-directory deploy ENV=staging

deploy-production: ## CD, second step: make deploy ENV=production (only a version that passed staging)
	@$(MAKE) --no-print-directory deploy ENV=production

deploy-smoke: install ## CD: start the API on the champion, smoke-test it, roll the alias back if it fails
	$(BIN)/mlops-kit deploy-smoke

canary: ## the tests against the newest mlflow, scikit-learn, pandas, papermill, nbval (not the pins), in .venv-canary
	$(MAKE) VENV=$(CANARY_VENV) CONSTRAINTS= install
	$(CANARY_VENV)/bin/python -m pip install --quiet --upgrade $(CANARY_PACKAGES)
	$(MAKE) VENV=$(CANARY_VENV) CONSTRAINTS= unit-tests notebook-tests

canary-versions: ## which versions the canary tested, beside the pinned ones
	@for p in $(CANARY_PACKAGES); do \
		printf "%-14s pinned %-10s canary %s\n" $$p \
			"$$(grep -i "^$$p==" constraints.txt | cut -d= -f3)" \
			"$$($(CANARY_VENV)/bin/python -m pip show $$p 2>/dev/null | sed -n 's/^Version: //p')"; \
	done

lint: install ## ruff: lint and format check
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

notebooks: install ## re-execute each notebook in place, in a fresh workspace, to refresh its committed outputs
	@for nb in notebooks/[0-9][0-9]_*.ipynb; do \
		ws=$$(mktemp -d); \
		env -u MLFLOW_TRACKING_URI MLOPS_KIT_WORKSPACE=$$ws MLOPS_KIT_RUNS_DIR=$$ws/runs \
			$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.kernel_name=$(KERNEL) "$$nb"; \
		rc=$$?; rm -rf $$ws; [ $$rc -eq 0 ] || exit $$rc; \
	done

lab: install ## open JupyterLab on the notebooks with the kit's kernel
	$(BIN)/jupyter lab --allow-root --notebook-dir=notebooks --ServerApp.ip=127.0.0.1

mlflow-ui: install ## MLflow UI on the kit's tracking store; prints the link to its model-training view
	@echo "MLflow UI (visão de treinamento de modelos): $$($(BIN)/python -c 'from mlops_kit.config import Settings; from mlops_kit.tracking import ui_url; print(ui_url(Settings(), "http://127.0.0.1:$(MLFLOW_PORT)"))')"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri "$$($(BIN)/python -c 'from mlops_kit.config import Settings; print(Settings().tracking_uri)')" \
		--host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

serve: install ## the REST API serving the champion (http://127.0.0.1:$(PORT)/docs)
	$(BIN)/mlops-kit serve --port $(PORT)

bench: install ## benchmarks: notebook run times against a bare kernel start
	$(BIN)/python benchmarks/bench_notebooks.py

talk-check: install system-deps ## the evening before the talk: setup, notebooks, API, /docs in a browser, JupyterLab, MLflow UI -> GO / NO-GO
	$(BIN)/mlops-kit talk-check

team-up: install system-deps ## team mode on this machine: PostgreSQL + mlflow server (then apply the exports it prints)
	@$(BIN)/mlops-kit team up

team-down: ## stop the team stack (its data stays in workspace/team)
	@$(BIN)/mlops-kit team down

spark-up: $(SPARK_STAMP) ## a Spark standalone cluster on 127.0.0.1: a master and two workers (installs Java 17 where missing; prints the master URL)
	@$(BIN)/mlops-kit spark up

spark-down: ## stop the Spark cluster (its logs stay in workspace/spark)
	@$(BIN)/mlops-kit spark down

reset: ## remove everything generated (MLflow database, artifacts, processed data, runs, dist); data/raw stays
	@if [ -f workspace/team/team.json ]; then $(BIN)/mlops-kit team down; fi
	@if [ -f workspace/spark/spark.json ]; then $(BIN)/mlops-kit spark down; fi
	rm -rf workspace runs dist
	@echo "reset: workspace/, runs/ and dist/ removed; data/raw/ untouched"

lock: ## re-pin constraints.txt from the current .venv (after changing pyproject.toml)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt
