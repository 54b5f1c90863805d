"""pcapng writer: a pure-Python parse-back of the blocks, then tshark and capinfos as peers.

tshark and capinfos come from the Debian packages tshark and wireshark-common (a
dependency of tshark). Without them these tests skip, except under CI=true, where
they fail so a missing install cannot pass unnoticed.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
from typing import Dict, List, Tuple

import pytest

from conftest import need_tool

from xdphints_cli.cli import pcapng
from xdphints_cli.errors import NotFoundError
from xdphints_cli.cli.pcapng import PcapngWriter


BASE_NS = 1_700_000_000_123_456_789


def udp_frame(sport: int, dport: int, payload: bytes) -> bytes:
    ip_len = 20 + 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 1, 0, 64, 17, 0, bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2)))
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    return bytes.fromhex("020000000002" "020000000001" "0800") + ip + udp + payload


# (if index, ts ns, sport, dport, payload, orig_len, hash, queue, comment)
PACKETS = [
    (0, BASE_NS, 1234, 5678, b"hello", None, 0xDEADBEEF, 3, "rx-timestamp: 1700000000.123456789\nrx-hash: 0xdeadbeef l4"),
    (0, BASE_NS + 1, 4000, 53, b"ab", None, None, None, None),
    (1, BASE_NS + 999_999_999, 9, 10, b"x" * 7, 1500, 0x1, 0, "ü utf-8 ✓"),
    (1, BASE_NS + 3_600_000_000_007, 65535, 1, b"", None, None, 7, "an hour later"),
]


def write_sample(path_or_file) -> None:
    with PcapngWriter(path_or_file) as w:
        ids = [w.add_interface("veth0", "veth0 queue 3"), w.add_interface("eth1")]
        for ifx, ts, sport, dport, payload, orig, hsh, queue, comment in PACKETS:
            w.write_packet(ids[ifx], ts, udp_frame(sport, dport, payload), orig, hash=hsh, queue=queue, comment=comment)


# -- pure-Python reader ------------------------------------------------------------


def parse_options(buf: bytes) -> List[Tuple[int, bytes]]:
    opts = []
    pos = 0
    while pos < len(buf):
        assert pos + 4 <= len(buf), "truncated option header"
        code, length = struct.unpack_from("<HH", buf, pos)
        pos += 4
        if code == 0:
            assert length == 0
            assert pos == len(buf), "data after opt_endofopt"
            return opts
        value = buf[pos:pos + length]
        assert len(value) == length
        padded = (length + 3) & ~3
        assert buf[pos + length:pos + padded] == b"\0" * (padded - length), "option padding not zero"
        opts.append((code, value))
        pos += padded
    assert not opts, "options without opt_endofopt"
    return opts


def parse_blocks(data: bytes) -> List[Tuple[int, bytes]]:
    blocks = []
    pos = 0
    while pos < len(data):
        assert pos % 4 == 0
        btype, length = struct.unpack_from("<II", data, pos)
        assert length % 4 == 0 and length >= 12
        assert pos + length <= len(data), "block runs past the end"
        (trailer,) = struct.unpack_from("<I", data, pos + length - 4)
        assert trailer == length
        blocks.append((btype, data[pos + 8:pos + length - 4]))
        pos += length
    return blocks


def test_blocks_parse_back():
    buf = io.BytesIO()
    write_sample(buf)
    assert not buf.closed  # a caller's file stays open
    blocks = parse_blocks(buf.getvalue())
    assert [b[0] for b in blocks] == [0x0A0D0D0A, 1, 1] + [6] * len(PACKETS)

    bom, major, minor, section_len = struct.unpack_from("<IHHq", blocks[0][1])
    assert (bom, major, minor, section_len) == (0x1A2B3C4D, 1, 0, -1)
    shb_opts = dict(parse_options(blocks[0][1][16:]))
    assert shb_opts[4] == b"xdphints"

    idbs = []
    for _, body in blocks[1:3]:
        linktype, reserved, snaplen = struct.unpack_from("<HHI", body)
        assert (linktype, reserved, snaplen) == (1, 0, 0)
        idbs.append(dict(parse_options(body[8:])))
    assert idbs[0] == {2: b"veth0", 3: b"veth0 queue 3", 9: b"\x09"}
    assert idbs[1] == {2: b"eth1", 9: b"\x09"}

    for (_, body), (ifx, ts, sport, dport, payload, orig, hsh, queue, comment) in zip(blocks[3:], PACKETS):
        if_id, hi, lo, caplen, origlen = struct.unpack_from("<IIIII", body)
        frame = udp_frame(sport, dport, payload)
        assert if_id == ifx
        assert (hi << 32) | lo == ts
        assert caplen == len(frame)
        assert origlen == (orig or len(frame))
        padded = (caplen + 3) & ~3
        assert body[20:20 + caplen] == frame
        assert body[20 + caplen:20 + padded] == b"\0" * (padded - caplen)
        opts: Dict[int, bytes] = dict(parse_options(body[20 + padded:]))
        expected = {}
        if hsh is not None:
            expected[3] = bytes((pcapng.HASH_TOEPLITZ,)) + struct.pack("<I", hsh)
        if queue is not None:
            expected[6] = struct.pack("<I", queue)
        if comment:
            expected[1] = comment.encode()
        assert opts == expected


def test_snaplen_truncates_and_arguments_checked():
    buf = io.BytesIO()
    with PcapngWriter(buf) as w:
        i = w.add_interface("lo", snaplen=16)
        w.write_packet(i, 1, bytes(range(40)))
        with pytest.raises(ValueError):
            w.write_packet(5, 1, b"x")
        with pytest.raises(ValueError):
            w.write_packet(i, -1, b"x")
        with pytest.raises(ValueError):
            w.write_packet(i, 1, b"xyz", orig_len=2)
    _, body = parse_blocks(buf.getvalue())[2]
    assert struct.unpack_from("<II", body, 12) == (16, 40)
    assert body[20:36] == bytes(range(16))
    with pytest.raises(ValueError):
        w.write_packet(i, 1, b"x")  # closed


def test_other_hash_algorithms():
    buf = io.BytesIO()
    with PcapngWriter(buf) as w:
        i = w.add_interface("lo")
        w.write_packet(i, 1, b"abcd", hash=0x1234, hash_algorithm=pcapng.HASH_XOR)
        w.write_packet(i, 1, b"abcd", hash=0xCAFEF00D, hash_algorithm=pcapng.HASH_CRC32)
    blocks = parse_blocks(buf.getvalue())
    assert dict(parse_options(blocks[2][1][24:]))[3] == b"\x01\x34\x12"
    assert dict(parse_options(blocks[3][1][24:]))[3] == b"\x02\x0d\xf0\xfe\xca"


def test_largest_timestamp():
    buf = io.BytesIO()
    with PcapngWriter(buf) as w:
        w.write_packet(w.add_interface("lo"), 2**64 - 1, b"")
        with pytest.raises(ValueError):
            w.write_packet(0, 2**64, b"")
    _, body = parse_blocks(buf.getvalue())[2]
    assert struct.unpack_from("<III", body) == (0, 0xFFFFFFFF, 0xFFFFFFFF)


def test_missing_directory_is_not_found(tmp_path):
    with pytest.raises(NotFoundError):
        PcapngWriter(str(tmp_path / "no" / "such" / "dir.pcapng"))


# -- tshark / capinfos as peers ---------------------------------------------------


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.fixture
def sample_file(tmp_path):
    path = tmp_path / "sample.pcapng"
    write_sample(str(path))
    return str(path)


def test_tshark_reads_packets(sample_file):
    tshark = need_tool("tshark")
    layers = [p["_source"]["layers"] for p in json.loads(run(tshark, "-r", sample_file, "-T", "json"))]
    assert len(layers) == len(PACKETS)
    for lay, (ifx, ts, sport, dport, payload, orig, hsh, queue, comment) in zip(layers, PACKETS):
        frame = lay["frame"]
        sec, nsec = divmod(ts, 10**9)
        assert frame["frame.time_epoch"] == f"{sec}.{nsec:09d}"
        assert int(frame["frame.interface_id"]) == ifx
        assert int(frame["frame.cap_len"]) == 42 + len(payload)
        assert int(frame["frame.len"]) == (orig or 42 + len(payload))
        assert (int(lay["udp"]["udp.srcport"]), int(lay["udp"]["udp.dstport"])) == (sport, dport)
        if queue is None:
            assert "frame.interface_queue" not in frame
        else:
            assert int(frame["frame.interface_queue"]) == queue
        got_comment = lay.get("pkt_comment", {}).get("frame.comment")
        assert got_comment == comment
    assert layers[0]["frame"]["frame.interface_id_tree"] == {
        "frame.interface_name": "veth0",
        "frame.interface_description": "veth0 queue 3",
    }


def test_tshark_file_structure(sample_file):
    """Wireshark's own pcapng-structure dissector: block lengths, options, hash bytes."""
    tshark = need_tool("tshark")
    out = run(tshark, "-r", sample_file, "-X", "read_format:MIME Files Format", "-T", "json", "--no-duplicate-keys")
    assert "_ws.expert" not in out and "_ws.malformed" not in out
    (packet,) = json.loads(out)
    blocks = packet["_source"]["layers"]["file-pcapng"]["pcapng.block"]
    assert len(blocks) == 3 + len(PACKETS)
    for b in blocks:
        assert b["pcapng.block.length"] == b["pcapng.block.length_trailer"]
    first_epb_opts = blocks[3]["pcapng.block.data"]["pcapng.options"]["pcapng.options.option"]
    by_code = {o["pcapng.options.option.code"]: o for o in first_epb_opts}
    assert by_code["3"]["pcapng.options.option.data.packet.hash.algorithm"] == "5"
    assert by_code["3"]["pcapng.options.option.data.packet.hash.data"] == "ef:be:ad:de"
    assert by_code["6"]["pcapng.options.option.data.packet.queue"] == "3"
    assert by_code["1"]["pcapng.options.option.data.comment"] == PACKETS[0][8]
    assert "0" in by_code  # opt_endofopt


def test_capinfos(sample_file):
    need_tool("tshark")
    capinfos = need_tool("capinfos")
    rows = run(capinfos, "-T", "-M", "-r", "-c", "-a", "-e", "-S", sample_file).strip().split("\t")
    path, count, start, end = rows
    assert path == sample_file
    assert int(count) == len(PACKETS)
    assert start == "1700000000.123456789"
    assert end == "1700003600.123456796"
    report = run(capinfos, sample_file)
    assert "nanoseconds (9)" in report
    assert "Number of interfaces in file: 2" in report
    assert "Capture application: xdphints" in report
