"""AF_XDP from pure Python: UMEM (umem.py), mmapped rings (rings.py) and the socket
owner (socket.py). Syscall plumbing (setsockopt/mmap/bind layouts) lives in
`_sys.py`; the ring logic in rings.py only sees memoryviews."""
