# The two commands of the README. Each sets everything up (Debian packages, a local
# virtualenv, the project) and then runs.
.PHONY: demo test setup

demo:
	@bash scripts/bootstrap.sh demo
	@.venv/bin/voxeron demo

test:
	@bash scripts/bootstrap.sh test
	@bash scripts/test.sh

setup:
	@bash scripts/bootstrap.sh test
