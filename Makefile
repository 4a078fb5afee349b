# `make run` starts a working console on this machine; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
LOCALE_IGNORE := --ignore .venv --ignore node_modules --ignore var --ignore staticfiles

.PHONY: setup run test lint lock messages makemessages worker cron clean

setup: $(VENV)/.installed node_modules/.installed messages

# Python packages exactly as locked, each checked against its hash (requirements-dev.lock: the
# application's and the tests' packages; requirements.lock: the application's alone, for production).
$(VENV)/.installed: requirements-dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	touch $@

node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# After changing the dependencies in pyproject.toml (or merging a branch that did): lock them again.
PIP_COMPILE := $(PY) -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links
lock: $(VENV)/.installed
	$(PIP_COMPILE) -o requirements.lock pyproject.toml
	$(PIP_COMPILE) --extra dev -o requirements-dev.lock pyproject.toml

messages: $(VENV)/.installed
	$(MANAGE) compilemessages $(LOCALE_IGNORE) -v 0

# One run from the top: strings land in their app's locale/, top-level templates in imageconsole/locale/.
makemessages: $(VENV)/.installed
	$(MANAGE) makemessages -l zh_Hans --no-location --no-obsolete $(LOCALE_IGNORE) --ignore bench --ignore tests -v 0

run: prerequisites-run setup
	$(PY) scripts/run.py

worker: prerequisites-run setup
	$(MANAGE) rqworker imports convert default maintenance --with-scheduler

cron: setup
	$(MANAGE) rqcron imageconsole.cron

# One pytest worker per CPU and one more (pytest-xdist; tests/plugin.py), a test file's tests in one worker;
# `PYTEST_ARGS=-n0` runs serially.
PYTEST_ARGS ?= -n auto --dist loadfile --durations=25
test: prerequisites-test setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# System packages first (scripts/prerequisites.sh installs them as root on Debian/Ubuntu, else names them).
prerequisites-%:
	@scripts/prerequisites.sh $*

clean:
	rm -rf $(VENV) node_modules staticfiles
