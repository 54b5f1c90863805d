"""The one place that imports pyroute2: its netlink message classes, without the rest.

xdphints uses only `pyroute2.netlink` (the nla/nlmsg/genlmsg framework), about 10 ms
to import. But `import pyroute2.netlink` first runs `pyroute2/__init__.py`, which
imports every family pyroute2 has (ndb, ipdb, conntrack, asyncio, ssl...: over 100 ms,
more than show or check need in total). So the package is entered through a stand-in:
a module object for `pyroute2` with the real package's path and spec, whose
`__init__.py` has not run. Submodules import from it normally.

The stand-in stays correct for anyone else in the process: the first time an
attribute it lacks is asked for (`from pyroute2 import IPRoute`), it runs the real
`__init__.py` in its own namespace, and from then on it is the real package.

If pyroute2 is already imported, it is used as it is. If the light import fails (a
future pyroute2 lays its modules out differently), the stand-in is removed and the
plain import runs: slower, never broken.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

# what xdphints uses from pyroute2.netlink
_NAMES = ("NLA_F_NESTED", "ctrlmsg", "genlmsg", "nla", "nlmsg", "nlmsg_base")
# the modules of pyroute2's own __init__ that the light path must never import
HEAVY = ("pyroute2.ndb", "pyroute2.ipdb", "pyroute2.iproute", "pyroute2.conntrack",
         "pyroute2.nslink", "pyroute2.netns", "asyncio", "ssl")


class _StandIn(types.ModuleType):
    """`pyroute2` before its __init__.py ran; runs it on the first missing attribute."""

    def __getattr__(self, name: str):
        if name.startswith("__") or self.__dict__.get("_xdphints_loading"):
            raise AttributeError(name)
        self.__dict__["_xdphints_loading"] = True
        try:
            self.__spec__.loader.exec_module(self)
        finally:
            self.__dict__.pop("_xdphints_loading", None)
            self.__class__ = types.ModuleType     # a plain module from now on
        return getattr(self, name)


def _light():
    """pyroute2.netlink imported through a stand-in package; None when that fails."""
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations or spec.loader is None:
        return None
    stand_in = _StandIn("pyroute2")
    stand_in.__spec__ = spec
    stand_in.__path__ = list(spec.submodule_search_locations)
    stand_in.__file__ = spec.origin
    stand_in.__package__ = "pyroute2"
    stand_in.__loader__ = spec.loader
    sys.modules["pyroute2"] = stand_in
    try:
        mod = importlib.import_module("pyroute2.netlink")
        for n in _NAMES:
            getattr(mod, n)
        return mod
    except Exception:  # noqa: BLE001 (any failure: undo, and fall back to the plain import)
        for k in [k for k in sys.modules if k == "pyroute2" or k.startswith("pyroute2.")]:
            del sys.modules[k]
        return None


def _load():
    if "pyroute2" not in sys.modules:
        mod = _light()
        if mod is not None:
            return mod
    return importlib.import_module("pyroute2.netlink")


netlink = _load()
NLA_F_NESTED = netlink.NLA_F_NESTED
ctrlmsg = netlink.ctrlmsg
genlmsg = netlink.genlmsg
nla = netlink.nla
nlmsg = netlink.nlmsg
nlmsg_base = netlink.nlmsg_base
