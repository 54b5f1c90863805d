"""A small eBPF instruction encoder and assembler (little-endian hosts).

`struct bpf_insn` is 8 bytes: u8 code; u8 dst:4 (low nibble), src:4; s16 off; s32 imm.
`ld_imm64` takes two slots. Jumps may name a label instead of an offset; `assemble()`
resolves them (offset = target slot - (jump slot + 1)), so generated programs with
branches need no hand-counted offsets:

    prog = assemble([
        mov64_imm(R0, XDP_PASS),
        jmp_imm(JEQ, R1, 0, "out"),
        mov64_imm(R0, XDP_DROP),
        Label("out"),
        exit_(),
    ])
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Iterable, List, Optional, Tuple, Union

# registers
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
FP = R10

# instruction classes
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
# sizes (bits 3-4) and modes (bits 5-7) for loads/stores
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
IMM, ABS, IND, MEM, MEMSX, ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0
# source operand
K, X = 0x00, 0x08
# ALU operations
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH, END = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0)
TO_LE, TO_BE = 0x00, 0x08
# JMP operations
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, CALL, EXIT, JLT, JLE, JSLT, JSLE = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0)

# src_reg values with special meaning
PSEUDO_MAP_FD = 1      # ld_imm64: imm is a map fd
PSEUDO_MAP_VALUE = 2   # ld_imm64: imm is a map fd, second imm an offset into its value
PSEUDO_CALL = 1        # call: imm is a relative offset to a BPF subprogram
PSEUDO_KFUNC_CALL = 2  # call: imm is the BTF id of a kernel function (FUNC)

# XDP actions
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)

_SIZE_BY_BYTES = {1: B, 2: H, 4: W, 8: DW}

Target = Union[int, str]


@dataclass(frozen=True)
class Insn:
    """One 8-byte slot. `target` names a label whose offset `assemble()` fills in."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    target: Optional[str] = None

    def encode(self) -> bytes:
        if self.target is not None:
            raise ValueError(f"unresolved jump target {self.target!r}")
        if not (0 <= self.dst <= 15 and 0 <= self.src <= 15):
            raise ValueError(f"register out of range in {self}")
        if not -0x8000 <= self.off <= 0x7FFF:
            raise ValueError(f"offset {self.off} does not fit in s16")
        if not -0x80000000 <= self.imm <= 0xFFFFFFFF:
            raise ValueError(f"immediate {self.imm} does not fit in 32 bits")
        return struct.pack("<BBHI", self.code, (self.src << 4) | self.dst,
                           self.off & 0xFFFF, self.imm & 0xFFFFFFFF)

    @classmethod
    def decode(cls, data: bytes, offset: int = 0) -> "Insn":
        code, regs, off, imm = struct.unpack_from("<BBhi", data, offset)
        return cls(code, regs & 0xF, regs >> 4, off, imm)


@dataclass(frozen=True)
class Label:
    """A position marker for `assemble()`; occupies no slot."""

    name: str


def _size(size: int) -> int:
    try:
        return _SIZE_BY_BYTES[size]
    except KeyError:
        raise ValueError(f"access size must be 1, 2, 4 or 8 bytes, not {size}") from None


def _split_target(target: Target) -> Tuple[int, Optional[str]]:
    return (0, target) if isinstance(target, str) else (int(target), None)


# --- ALU ----------------------------------------------------------------------------
def alu64_imm(op: int, dst: int, imm: int) -> Insn:
    return Insn(ALU64 | op | K, dst, 0, 0, imm)


def alu64_reg(op: int, dst: int, src: int) -> Insn:
    return Insn(ALU64 | op | X, dst, src)


def alu32_imm(op: int, dst: int, imm: int) -> Insn:
    return Insn(ALU | op | K, dst, 0, 0, imm)


def alu32_reg(op: int, dst: int, src: int) -> Insn:
    return Insn(ALU | op | X, dst, src)


def mov64_imm(dst: int, imm: int) -> Insn:
    return alu64_imm(MOV, dst, imm)


def mov64_reg(dst: int, src: int) -> Insn:
    return alu64_reg(MOV, dst, src)


def mov32_imm(dst: int, imm: int) -> Insn:
    return alu32_imm(MOV, dst, imm)


def mov32_reg(dst: int, src: int) -> Insn:
    return alu32_reg(MOV, dst, src)


def add64_imm(dst: int, imm: int) -> Insn:
    return alu64_imm(ADD, dst, imm)


def endian(dst: int, bits: int, to_be: bool = True) -> Insn:
    """dst = htobe{bits}(dst) (or htole). bits: 16, 32 or 64."""
    if bits not in (16, 32, 64):
        raise ValueError("endian conversion width must be 16, 32 or 64")
    return Insn(ALU | END | (TO_BE if to_be else TO_LE), dst, 0, 0, bits)


# --- memory -------------------------------------------------------------------------
def ldx_mem(size: int, dst: int, src: int, off: int) -> Insn:
    """dst = *(uSIZE *)(src + off); size in bytes."""
    return Insn(LDX | MEM | _size(size), dst, src, off)


def stx_mem(size: int, dst: int, src: int, off: int) -> Insn:
    """*(uSIZE *)(dst + off) = src."""
    return Insn(STX | MEM | _size(size), dst, src, off)


def st_mem(size: int, dst: int, off: int, imm: int) -> Insn:
    """*(uSIZE *)(dst + off) = imm."""
    return Insn(ST | MEM | _size(size), dst, 0, off, imm)


# atomic operations (imm of a STX | ATOMIC instruction)
ATOMIC_ADD, FETCH = 0x00, 0x01


def atomic_add(size: int, dst: int, src: int, off: int, fetch: bool = False) -> Insn:
    """*(uSIZE *)(dst + off) += src, atomically (lock xadd); with `fetch` src gets
    the old value (5.12). size 4 or 8."""
    if size not in (4, 8):
        raise ValueError("atomic access size must be 4 or 8 bytes")
    return Insn(STX | ATOMIC | _size(size), dst, src, off, ATOMIC_ADD | (FETCH if fetch else 0))


def ld_imm64(dst: int, imm: int, src: int = 0) -> Tuple[Insn, Insn]:
    """dst = imm (64 bits, two slots)."""
    imm &= 0xFFFFFFFFFFFFFFFF
    return (Insn(LD | DW | IMM, dst, src, 0, imm & 0xFFFFFFFF),
            Insn(0, 0, 0, 0, imm >> 32))


def ld_map_fd(dst: int, map_fd: int) -> Tuple[Insn, Insn]:
    """dst = the map behind `map_fd` (the verifier swaps in the map pointer)."""
    return ld_imm64(dst, map_fd, PSEUDO_MAP_FD)


# --- jumps and calls ----------------------------------------------------------------
def jmp_imm(op: int, dst: int, imm: int, target: Target) -> Insn:
    """if dst OP imm goto target (64-bit compare)."""
    off, label = _split_target(target)
    return Insn(JMP | op | K, dst, 0, off, imm, label)


def jmp_reg(op: int, dst: int, src: int, target: Target) -> Insn:
    off, label = _split_target(target)
    return Insn(JMP | op | X, dst, src, off, 0, label)


def jmp32_imm(op: int, dst: int, imm: int, target: Target) -> Insn:
    """if (u32)dst OP imm goto target."""
    off, label = _split_target(target)
    return Insn(JMP32 | op | K, dst, 0, off, imm, label)


def jmp32_reg(op: int, dst: int, src: int, target: Target) -> Insn:
    off, label = _split_target(target)
    return Insn(JMP32 | op | X, dst, src, off, 0, label)


def ja(target: Target) -> Insn:
    off, label = _split_target(target)
    return Insn(JMP | JA, 0, 0, off, 0, label)


def call_helper(helper_id: int) -> Insn:
    return Insn(JMP | CALL, 0, 0, 0, helper_id)


def call_kfunc(btf_id: int, btf_fd_index: int = 0) -> Insn:
    """Call a kernel function by BTF id; off 0 = vmlinux, else an index into fd_array."""
    return Insn(JMP | CALL, 0, PSEUDO_KFUNC_CALL, btf_fd_index, btf_id)


def exit_() -> Insn:
    return Insn(JMP | EXIT)


# --- assembler ----------------------------------------------------------------------
Item = Union[Insn, Label, Tuple[Insn, ...], List[Insn]]


def _flatten(items: Iterable[Item]) -> List[Union[Insn, Label]]:
    out: List[Union[Insn, Label]] = []
    for item in items:
        if isinstance(item, (Insn, Label)):
            out.append(item)
        else:
            out.extend(_flatten(item))
    return out


def assemble(items: Iterable[Item]) -> List[Insn]:
    """Flatten instructions (ld_imm64 pairs included), drop labels, resolve jumps."""
    flat = _flatten(items)
    labels = {}
    slot = 0
    for item in flat:
        if isinstance(item, Label):
            if item.name in labels:
                raise ValueError(f"duplicate label {item.name!r}")
            labels[item.name] = slot
        else:
            slot += 1
    out: List[Insn] = []
    for item in flat:
        if isinstance(item, Label):
            continue
        if item.target is not None:
            if item.target not in labels:
                raise ValueError(f"undefined label {item.target!r}")
            item = replace(item, off=labels[item.target] - (len(out) + 1), target=None)
        out.append(item)
    return out


def encode(insns: Iterable[Item]) -> bytes:
    """The program image: assemble (if needed) and encode every slot."""
    return b"".join(i.encode() for i in assemble(insns))
