# The two commands of the README. Each sets everything up (Debian packages, a local
# virtualenv, the project) and then runs.
.PHONY: demo test setup soak

demo:
	@bash scripts/bootstrap.sh demo
	@.venv/bin/voxeron demo

test:
	@bash scripts/bootstrap.sh test
	@bash scripts/test.sh

setup:
	@bash scripts/bootstrap.sh test

# The long fault-suite variants (thousands of orders, hundreds of kills); not part of `make test`.
soak:
	@bash scripts/bootstrap.sh test
	@.venv/bin/python -m pytest -m soak tests/faults
