# Everything runs from a local virtualenv; `make run` and `make test` create it when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export DJANGO_DEBUG ?= 1

.PHONY: run test lint bench install clean

$(BIN)/activate: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

install: $(BIN)/activate

# The Vercel AI SDK, for the test that drives our stream with its own client. Without npm this
# says so and goes on (the test then skips, or fails under CI=true); with npm, a failed install
# fails the target.
tests/ai_sdk/node_modules: tests/ai_sdk/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/ai_sdk --silent --no-audit --no-fund && touch $@; \
	else \
		echo "npm not found: not installing tests/ai_sdk (install Node.js and npm to run its test)"; \
	fi

## Set up and serve on http://localhost:$(PORT)/ (offline provider unless GEMINI_API_KEY is set).
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python -m uvicorn chatbackend.asgi:application --host 127.0.0.1 --port $(PORT) \
		--timeout-graceful-shutdown 10

## The whole test suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set, else SQLite).
test: install tests/ai_sdk/node_modules
	DJANGO_DEBUG=0 $(BIN)/ruff check .
	DJANGO_DEBUG=0 $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: install
	DJANGO_DEBUG=0 $(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache
