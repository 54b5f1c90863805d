"""The type records (btf/types.py): what the frozen dataclasses they replaced gave."""

from __future__ import annotations

import copy
import pickle

import pytest

from xdphints_cli.btf import types as T


def test_fields_in_order_with_defaults_by_position_or_keyword():
    m = T.Member("a", 3, 32)
    assert (m.name, m.type, m.bit_offset, m.bitfield_size) == ("a", 3, 32, 0)
    assert T.Member(name="a", type=3, bit_offset=32) == m
    s = T.Struct(5, "s", 8, (m,))
    assert (s.id, s.name, s.size, s.members) == (5, "s", 8, (m,))
    assert T.Enum64(1, "e", 8, ()).signed is False and T.DeclTag(2, "t", 1).component_idx == -1
    assert repr(m) == "Member(name='a', type=3, bit_offset=32, bitfield_size=0)"


@pytest.mark.parametrize("args, kw", [((), {}), (("a", 3, 32, 0, 9), {}), (("a", 3, 32), {"name": "b"}),
                                       (("a", 3, 32), {"colour": 1})])
def test_wrong_arguments_are_a_type_error(args, kw):
    with pytest.raises(TypeError):
        T.Member(*args, **kw)


def test_immutable():
    s = T.Struct(5, "s", 8, ())
    with pytest.raises(AttributeError):
        s.size = 9
    with pytest.raises(AttributeError):
        del s.name
    with pytest.raises(AttributeError):
        s.extra = 1


def test_equality_and_hash_by_value_and_class():
    a, b = T.Struct(5, "s", 8, ()), T.Struct(5, "s", 8, ())
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != T.Union(5, "s", 8, ()) and a != T.Struct(5, "s", 16, ())
    assert T.Const(1, "", 2) != T.Volatile(1, "", 2)


def test_copy_and_pickle():
    s = T.Struct(5, "s", 8, (T.Member("a", 3, 0, 4),))
    for other in (copy.copy(s), copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert other == s and type(other) is T.Struct
