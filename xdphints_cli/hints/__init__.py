"""The built-in hints program and everything `xdphints dump` needs around it.

  layout.py   the metadata struct the program writes, and its BTF (struct + FUNC)
  program.py  the instruction generator and the dev-bound load
  packet.py   one-line packet summaries (Ethernet, VLAN, IPv4/IPv6, ports)
  decoding.py metadata -> HintValues through the program's BTF (trailing btf_id)
  capture.py  the capture session: checks, XSKMAP, socket, link, receive loop, stats
"""
