"""The weights that ship are exactly the ones core.models.shipped names; retired ones fail clearly."""

from __future__ import annotations

import pytest

from core.hashing import file_sha256
from core.models import shipped
from core.models.shipped import RETIRED, RetiredWeightsError

SHIPPED = (shipped.COMPACT_DEFAULT, shipped.COMPACT_FOR_FUSION, shipped.OVS_DEFAULT, shipped.CENTERNET_BACKBONE)


def test_the_weight_folders_hold_what_ships_and_nothing_else():
    on_disk = {p for p in shipped.MODELS.glob("*/weights/*") if p.is_file()}
    assert on_disk == set(SHIPPED)
    assert sum(p.stat().st_size for p in SHIPPED) < 20 * 2**20
    assert not set(RETIRED) & {p.name for p in on_disk}
    assert {p.name: file_sha256(p) for p in SHIPPED}.keys().isdisjoint(r.sha256 for r in RETIRED.values())


@pytest.mark.parametrize("name", sorted(RETIRED))
def test_a_retired_file_asked_for_by_name_says_how_to_get_it_back(name):
    from core.models.compact.encoder import ImageEncoder, resolve_weights
    from core.models.ovs.checkpoint import load_checkpoint

    load = load_checkpoint if name.startswith("ovs_") else ImageEncoder.from_pretrained
    folder = shipped.OVS_DEFAULT.parent if name.startswith("ovs_") else resolve_weights(name).parent
    with pytest.raises(RetiredWeightsError) as e:
        load(folder / name)
    msg = str(e.value)
    assert f"{name} no longer ships" in msg and RETIRED[name].card in msg
    assert RETIRED[name].retrain in msg and f"git show {shipped.RETIRED_IN}:" in msg


def test_settings_naming_a_retired_file_fail_instead_of_falling_back(monkeypatch):
    from core.semantics.fused_descriptor import ovs_weights_path
    from core.semantics.stage import compact_weights_available

    assert compact_weights_available() and ovs_weights_path() == shipped.OVS_DEFAULT
    monkeypatch.setenv("OV3R_COMPACT_WEIGHTS", str(shipped.COMPACT_DEFAULT.with_name("compact_v3.safetensors")))
    with pytest.raises(RetiredWeightsError, match="compact_v3.safetensors no longer ships"):
        compact_weights_available()
    monkeypatch.delenv("OV3R_COMPACT_WEIGHTS")
    monkeypatch.setenv("OV3R_OVS_WEIGHTS", "ovs_v4.safetensors")
    with pytest.raises(RetiredWeightsError, match="ovs_v4.safetensors no longer ships"):
        ovs_weights_path()
    # a missing file that never shipped is not "retired": the usual not-found path
    monkeypatch.setenv("OV3R_OVS_WEIGHTS", "/nowhere/mine.safetensors")
    assert ovs_weights_path() is None


def test_retired_by_hash_finds_the_file_a_model_was_trained_on():
    v2 = RETIRED["compact_v2.safetensors"].sha256
    assert shipped.retired_by_hash(v2[:16]) == "compact_v2.safetensors"
    assert shipped.retired_by_hash(file_sha256(shipped.COMPACT_DEFAULT)[:16]) is None
    assert shipped.retired_by_hash("") is None
