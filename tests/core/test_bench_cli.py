"""``ov3r bench --set``: engine settings are checked before any room is run."""

from __future__ import annotations

import pytest
from ov3r.core.bench.run import main


@pytest.mark.parametrize("value", ["no_such_setting=1", "planar_fill"], ids=["unknown", "no-value"])
def test_bad_engine_settings_are_refused_before_running(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--scenes", "/nonexistent/room", "--engine", "sfm", "--set", value])
    assert exc.value.code == 2
    assert "--set" in capsys.readouterr().err
