# possim: every target creates the virtualenv and installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
POSSIM := $(VENV)/bin/possim
STAMP := $(VENV)/.installed
# the suite waits mostly on processes, brokers and sockets: three workers keep two cores busy
TEST_WORKERS ?= 3

.PHONY: demo test bench fuzz chaos broker mosquitto chromium clean lock

# constraints.txt pins every version installed, pip and the build backend included, so a new machine
# gets what the suite was run with; `make lock` refreshes it.
PIN := -c constraints.txt

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(PIN) pip setuptools
	$(PY) -m pip install -q $(PIN) --no-build-isolation -e '.[dev]'
	touch $(STAMP)

## lock: re-resolve every dependency (dev and bench extras) in a new virtualenv and rewrite constraints.txt
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip setuptools
	.lock-venv/bin/pip install -q '.[dev,bench]'
	{ sed -n '1,2p' constraints.txt; .lock-venv/bin/pip freeze --all --exclude possim; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv build

## demo: response-lost under every policy side by side, then the key failure modes, narrated (in memory)
demo: $(STAMP)
	$(POSSIM) demo --pace 0.15

## test: lint (ruff), types (mypy --strict), then the whole suite (real SQLite, ISO 8583 bytes, Mosquitto, Chromium)
test: $(STAMP) mosquitto chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

## bench: every speed goal beside a baseline measured in the same run (writes bench/results.json)
bench: $(STAMP) mosquitto
	$(PY) -m pip install -q $(PIN) --no-build-isolation -e '.[bench]'
	$(PY) bench/bench.py

## mosquitto: install the broker from the system package manager when it is missing
mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || command -v /usr/sbin/mosquitto >/dev/null 2>&1 || { \
		echo "installing mosquitto"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq mosquitto >/dev/null; }

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info

## fuzz: the large profile: 3000 generated schedules per recovery policy, and the search under none
fuzz: $(STAMP)
	$(POSSIM) fuzz --policy reversal --examples 3000 --out found-reversal.toml
	$(POSSIM) fuzz --policy query-then-reversal --examples 3000 --out found-qtr.toml
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/fuzzing/test_fuzz.py
	$(POSSIM) fuzz --policy none --out found-none.toml || test $$? -eq 1

## chaos: 20 terminal processes, an acquirer and Mosquitto SIGKILLed at random (20/20/10 times), then judged
chaos: $(STAMP) mosquitto
	$(POSSIM) chaos

## broker: Mosquitto on 127.0.0.1:1883 with possim's configuration, in the foreground, secured by the
## key file ./possim-keys.json (created when missing; `possim broker --insecure` for an anonymous one)
broker: $(STAMP) mosquitto
	$(POSSIM) broker --port 1883

## chromium: the headless browser the HTML report tests run in, and a Chinese font so the layout
## test measures Chinese with real glyphs, from the system package manager
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@fc-list :lang=zh 2>/dev/null | grep -q . || { \
		echo "installing fonts-noto-cjk"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq fonts-noto-cjk >/dev/null; }
