"""`dump --enable-timestamps` on veth (no hardware timestamping): exit 3 before anything
is loaded or changed."""

from __future__ import annotations

import pytest

from test_dump import run_dump, xdp_attached

pytestmark = pytest.mark.privileged


def test_enable_timestamps_without_hardware_timestamping(veth):
    before = veth.run("ip", "-d", "link", "show", veth.dev).stdout
    res = run_dump(veth, "-d", veth.dev, "--queue", "0", "--count", "1", "--enable-timestamps")
    assert res.returncode == 3, res.stderr
    assert "no hardware RX timestamping" in res.stderr and "rx-timestamp: unsupported" in res.stderr
    assert not xdp_attached(veth)
    assert veth.run("ip", "-d", "link", "show", veth.dev).stdout == before
