# Thin wrappers around tasks.py, the real entry point (it needs nothing but Python).
PYTHON ?= python3

.PHONY: test test-fast demo bench lint clean
test:
	$(PYTHON) tasks.py test $(PYTEST_ARGS)
test-fast:
	$(PYTHON) tasks.py test --fast $(PYTEST_ARGS)
demo:
	$(PYTHON) tasks.py demo $(DEMO_ARGS)
bench:
	$(PYTHON) tasks.py bench
lint:
	$(PYTHON) tasks.py lint
clean:
	rm -rf .venv .pytest_cache .hypothesis
