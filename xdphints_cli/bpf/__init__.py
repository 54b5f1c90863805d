"""bpf(2) from pure Python: syscall wrapper, instruction encoder, and owners for
programs, maps, links and BTF objects, plus object introspection.

Layering: `syscall` (raw bpf(2), attr packing, constants) <- `fd` (the owner of one
file descriptor) <- `prog`, `maps`, `link`, `btf`, `info`. `insn` is pure encoding.
"""
