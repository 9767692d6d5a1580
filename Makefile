# Set-up and everyday commands. `make run` and `make test` create the virtual
# environment on first use, so a fresh machine needs nothing else.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench soak install system-packages catalogs clean

run: $(STAMP)
	$(BIN)/headshot daemon --foreground

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench

soak: $(STAMP)
	$(BIN)/python -m pytest -m soak

install: $(STAMP)

# OpenCV (pulled in by mediapipe) needs libGL and GLib at import time.
system-packages:
	@if $(PYTHON) -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("GL") and ctypes.util.find_library("glib-2.0") else 1)'; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgl1 libglib2.0-0; \
	else \
		echo "Install libGL and GLib first (Debian: sudo apt-get install libgl1 libglib2.0-0)" >&2; exit 1; \
	fi

$(STAMP): pyproject.toml | system-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(MAKE) catalogs
	touch $(STAMP)

catalogs:
	$(BIN)/python -m pipeline.i18n

clean:
	rm -rf $(VENV) build *.egg-info
