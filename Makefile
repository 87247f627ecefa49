# Thin wrapper: the logic lives in meson and in deploy/ and tests/ scripts.
.PHONY: run test build debug bench clean

run:
	@bash deploy/run-dev.sh

test:
	@bash tests/run.sh

build:
	@bash deploy/install-deps.sh && bash deploy/build.sh release

debug:
	@bash deploy/install-deps.sh && bash deploy/build.sh debug

clean:
	rm -rf build
