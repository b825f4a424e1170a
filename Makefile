# Yiti OA — the two commands: `make run` (install, demo data, serve) and `make test` (install, all tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
CATALOGUES := $(wildcard core/translations plugins/*/translations tests/thirdparty/*/*/translations)

.PHONY: install install-test translations run test test-sqlite test-postgresql messages bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(MAKE) --no-print-directory translations

install-test: install
	$(BIN)/pip install --quiet -e '.[test]' -e tests/thirdparty/yiti-notes

translations:
	@for dir in $(CATALOGUES); do $(BIN)/pybabel compile --use-fuzzy -f -d $$dir -D messages >/dev/null || exit 1; done

run: install
	$(BIN)/yiti init
	$(BIN)/yiti demo
	$(BIN)/yiti run --host $(HOST) --port $(PORT)

test: install-test
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test-sqlite: install-test
	YITI_TEST_ENGINES=sqlite $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

# Refresh the catalogues after changing user-facing strings.
messages: $(BIN)/python
	$(BIN)/pybabel extract -F babel.cfg -k _l -o core/translations/messages.pot --ignore-dirs=".* _* tests test-artifacts instance" .
	$(BIN)/pybabel update -i core/translations/messages.pot -d core/translations --no-fuzzy-matching

bench: install-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache
