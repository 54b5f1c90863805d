"""Golden encodings for the instruction encoder.

GOLDEN rows were produced with `llvm-mc -triple bpf -filetype=obj` (LLVM 14) and
checked with `llvm-objdump -d`; the test re-assembles them when llvm-mc is present.
Rows without assembler text (ST with an immediate, kfunc calls, ld_map_fd) cannot be
written in LLVM 14's BPF assembly; they follow include/uapi/linux/bpf.h and are also
checked against the kernel by loading them in test_bpf_prog.py.
"""

from __future__ import annotations

import subprocess

import pytest

from conftest import need_tool

from xdphints_cli.bpf.insn import (
    ADD, AND, ARSH, JEQ, JGT, JNE, JSGE, JSLT, LSH, OR, RSH, SUB, XOR, Insn, Label, R0,
    R1, R2, R3, R4, R5, R6, R7, R10, alu32_reg, alu64_imm, alu64_reg, assemble, call_helper,
    call_kfunc, encode, endian, exit_, ja, jmp32_imm, jmp32_reg, jmp_imm, jmp_reg,
    ld_imm64, ld_map_fd, ldx_mem, mov32_imm, mov64_imm, mov64_reg, st_mem, stx_mem,
)

# (llvm assembly or None, instruction(s), expected bytes as hex)
GOLDEN = [
    ("r0 = 2", mov64_imm(R0, 2), "b700000002000000"),
    ("r6 = r1", mov64_reg(R6, R1), "bf16000000000000"),
    ("w0 = 7", mov32_imm(R0, 7), "b400000007000000"),
    ("w1 = w2", alu32_reg(0xB0, R1, R2), "bc21000000000000"),
    ("r1 += -32", alu64_imm(ADD, R1, -32), "07010000e0ffffff"),
    ("r2 += r3", alu64_reg(ADD, R2, R3), "0f32000000000000"),
    ("r4 -= 5", alu64_imm(SUB, R4, 5), "1704000005000000"),
    ("r4 &= 255", alu64_imm(AND, R4, 255), "57040000ff000000"),
    ("r5 |= r6", alu64_reg(OR, R5, R6), "4f65000000000000"),
    ("r3 <<= 8", alu64_imm(LSH, R3, 8), "6703000008000000"),
    ("r3 >>= 4", alu64_imm(RSH, R3, 4), "7703000004000000"),
    ("r3 s>>= 4", alu64_imm(ARSH, R3, 4), "c703000004000000"),
    ("r1 ^= r2", alu64_reg(XOR, R1, R2), "af21000000000000"),
    ("r0 = -1", mov64_imm(R0, -1), "b7000000ffffffff"),
    ("r2 = *(u32 *)(r6 + 16)", ldx_mem(4, R2, R6, 16), "6162100000000000"),
    ("r3 = *(u16 *)(r2 + 12)", ldx_mem(2, R3, R2, 12), "69230c0000000000"),
    ("r4 = *(u8 *)(r2 + 23)", ldx_mem(1, R4, R2, 23), "7124170000000000"),
    ("r5 = *(u64 *)(r10 - 8)", ldx_mem(8, R5, R10, -8), "79a5f8ff00000000"),
    ("*(u32 *)(r7 + 16) = r0", stx_mem(4, R7, R0, 16), "6307100000000000"),
    ("*(u64 *)(r10 - 16) = r1", stx_mem(8, R10, R1, -16), "7b1af0ff00000000"),
    ("*(u16 *)(r7 + 28) = r2", stx_mem(2, R7, R2, 28), "6b271c0000000000"),
    ("*(u8 *)(r7 + 1) = r2", stx_mem(1, R7, R2, 1), "7327010000000000"),
    ("r1 = 0x123456789abcdef0 ll", ld_imm64(R1, 0x123456789ABCDEF0),
     "18010000f0debc9a0000000078563412"),
    ("if r1 > r3 goto +5", jmp_reg(JGT, R1, R3, 5), "2d31050000000000"),
    ("if r4 != 8 goto -3", jmp_imm(JNE, R4, 8, -3), "5504fdff08000000"),
    ("if w1 == 17 goto +1", jmp32_imm(JEQ, R1, 17, 1), "1601010011000000"),
    ("if w2 s< w3 goto +2", jmp32_reg(JSLT, R2, R3, 2), "ce32020000000000"),
    ("if r1 s>= 0 goto +0", jmp_imm(JSGE, R1, 0, 0), "7501000000000000"),
    ("goto +7", ja(7), "0500070000000000"),
    ("call 54", call_helper(54), "8500000036000000"),
    ("call 51", call_helper(51), "8500000033000000"),
    ("r1 = be16 r1", endian(R1, 16), "dc01000010000000"),
    ("r2 = le32 r2", endian(R2, 32, to_be=False), "d402000020000000"),
    ("exit", exit_(), "9500000000000000"),
    # not expressible in LLVM 14 BPF assembly
    (None, st_mem(4, R7, 8, 0), "6207080000000000"),
    (None, st_mem(8, R10, -8, -1), "7a0af8ffffffffff"),
    (None, call_kfunc(66158), "85200000" + (66158).to_bytes(4, "little").hex()),
    (None, ld_map_fd(R1, 5), "1811000005000000" "0000000000000000"),
]


def _bytes(item) -> bytes:
    return encode([item])


@pytest.mark.parametrize("asm,item,expected", GOLDEN, ids=[g[2] for g in GOLDEN])
def test_golden_table(asm, item, expected):
    assert _bytes(item).hex() == expected


def test_table_matches_llvm_mc(tmp_path):
    need_tool("llvm-mc", "llvm-objcopy")
    rows = [g for g in GOLDEN if g[0] is not None]
    src = tmp_path / "golden.s"
    src.write_text("\n".join(r[0] for r in rows) + "\n")
    obj, text = tmp_path / "golden.o", tmp_path / "golden.bin"
    subprocess.run(["llvm-mc", "-triple", "bpf", "-filetype=obj", "-o", str(obj), str(src)],
                   check=True, capture_output=True)
    subprocess.run(["llvm-objcopy", "-O", "binary", "--only-section=.text", str(obj), str(text)],
                   check=True, capture_output=True)
    assert text.read_bytes() == encode([r[1] for r in rows])


def test_clang_compiled_program_matches(tmp_path):
    """A branchy C function compiled by clang, re-expressed with labels."""
    need_tool("clang", "llvm-objcopy")
    src = tmp_path / "p.c"
    src.write_text("int f(unsigned *p) { unsigned v = p[4]; if (v > 5) return 1; "
                   "return v == 0 ? 7 : 2; }\n")
    obj, text = tmp_path / "p.o", tmp_path / "p.bin"
    subprocess.run(["clang", "-O2", "-target", "bpf", "-c", str(src), "-o", str(obj)],
                   check=True, capture_output=True)
    subprocess.run(["llvm-objcopy", "-O", "binary", "--only-section=.text", str(obj), str(text)],
                   check=True, capture_output=True)
    got = text.read_bytes()
    dis = subprocess.run(["llvm-objdump", "-d", str(obj)], capture_output=True, text=True).stdout
    # Decoding then re-encoding every slot must reproduce clang's bytes exactly.
    insns = [Insn.decode(got, o) for o in range(0, len(got), 8)]
    assert encode(insns) == got, dis


def test_labels_resolve_forward_and_backward():
    prog = assemble([
        Label("top"),
        mov64_imm(R0, 0),
        jmp_imm(JEQ, R1, 0, "out"),
        ld_imm64(R2, 1 << 40),          # two slots between jump and target
        jmp_imm(JNE, R1, 1, "top"),
        Label("out"),
        exit_(),
    ])
    assert [i.off for i in prog] == [0, 3, 0, 0, -5, 0]
    assert prog[1].target is None


def test_assembler_errors():
    with pytest.raises(ValueError, match="undefined label"):
        assemble([ja("nowhere")])
    with pytest.raises(ValueError, match="duplicate label"):
        assemble([Label("a"), Label("a"), exit_()])
    with pytest.raises(ValueError, match="unresolved"):
        ja("x").encode()
    with pytest.raises(ValueError, match="access size"):
        ldx_mem(3, R0, R1, 0)
    with pytest.raises(ValueError, match="s16"):
        ja(40000).encode()


def test_decode_roundtrip():
    for _, item, hexed in GOLDEN:
        raw = bytes.fromhex(hexed)
        again = b"".join(Insn.decode(raw, o).encode() for o in range(0, len(raw), 8))
        assert again == raw

