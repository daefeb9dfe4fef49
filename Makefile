# make install  - .venv with the project and its dev tools (fast when nothing changed)
# make run      - the embedded orchestrator: web server, Celery worker and celery-beat
# make test     - the whole test suite (PYTEST_ARGS="-m smoke -x" passes extra arguments;
#                 ALLOW_NO_TESTS=1 accepts a selection that collects no test)
# make lint     - ruff

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
ALLOW_NO_TESTS ?= 0

.PHONY: install run test lint chromium clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m orchestrator.embedded

# The browser tests need Chromium; install Debian's when we can, else they skip.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
			|| echo "could not install chromium: the browser tests will be skipped"; \
	fi

test: $(STAMP) chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS) || { status=$$?; \
		if [ $$status -eq 5 ] && [ "$(ALLOW_NO_TESTS)" = 1 ]; then echo "no tests selected"; \
		else exit $$status; fi; }

lint: $(STAMP)
	$(BIN)/python -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
