/* Structs whose members, written out as C one after another, do not lay out as the
 * BTF says: what `btf --format c` must write padding and attributes for. Each one
 * reaches the BTF through a global variable. Self-contained: no kernel headers.
 *
 * With .BTF removed, the same structs are taken from the DWARF alone, which for
 * packed_bits means DW_AT_bit_offset values below zero.
 */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))

/* `:0` and unnamed bitfields leave holes BTF does not name (xdp-tools' rc_bits) */
struct rc_bits {
	__u32 a: 3;
	__u32: 0;
	__u32 b: 5;
	__u32: 7;
	__u8 c: 2;
	__u64 d: 40;
	__u16 e;
	__u8: 0;
	__u8 f: 1;
};

/* 1- and 2-byte enums: C makes an enum 4 bytes unless told otherwise */
enum small_enum { SMALL_A, SMALL_B } __attribute__((packed));
enum short_enum { SHORT_A = 0x100 } __attribute__((packed));

struct with_small_enum {
	__u8 a;
	enum small_enum e;
	__u16 b;
	enum small_enum tail[3];
	enum short_enum s;
	enum { ANON_A, ANON_B } __attribute__((packed)) anon;
};

/* aligned members (____cacheline_aligned), as net_device and Qdisc have */
struct cacheline {
	__u32 head;
	__u64 hot __attribute__((aligned(64)));
	__u8 flag;
	__u32 cold __attribute__((aligned(128)));
};

/* a struct aligned more than its members, ending in a hole (xdp_rxq_info) */
struct aligned_tail {
	void *dev;
	__u32 index;
} __attribute__((aligned(64)));

/* packed, its bitfields straddling bytes: clang's DWARF gives z and w
 * DW_AT_bit_offset values below zero */
struct packed_bits {
	__u8 a;
	__u16 z: 10;
	__u16 w: 6;
	__u8 b: 3;
	__u32 x;
} __attribute__((packed));

/* a packed struct inside an aligned one */
struct packed_in {
	__u8 a;
	struct packed_bits p;
	__u64 after;
} __attribute__((aligned(16)));

/* a union longer than its longest member */
union wide_union {
	__u8 bytes[10];
	__u16 half;
} __attribute__((aligned(8)));

struct holds_union {
	__u8 tag;
	union wide_union u;
	union {
		__u32 word;
		__u8 b[3];
	} __attribute__((aligned(16))) anon;
};

/* __int128 aligns to 16 in C, more than bpftool's alignment guess (8): kept at 8 here */
struct int128_at_8 {
	__u64 a;
	unsigned __int128 big;
} __attribute__((packed, aligned(8)));

/* a CO-RE style struct with members far apart (netstacklat's tcp_sock) */
struct sparse {
	__u32 first;
	__u32 srtt_us __attribute__((aligned(256)));
	__u64 bytes_acked __attribute__((aligned(32)));
	__u8 flags: 4;
};

/* an anonymous struct behind a pointer (parsed_partitions' parts) and an array of
 * anonymous structs (net_device_path_ctx's vlan) */
struct behind_pointer {
	__u64 disk;
	char name[32];
	struct {
		__u64 from;
		__u64 size;
		int flags;
	} *parts;
	struct {
		__u16 id;
		__u16 proto;
	} vlan[2];
	int next;
};

struct rc_bits g_rc_bits;
struct with_small_enum g_with_small_enum;
struct cacheline g_cacheline;
struct aligned_tail g_aligned_tail;
struct packed_bits g_packed_bits;
struct packed_in g_packed_in;
struct holds_union g_holds_union;
struct int128_at_8 g_int128_at_8;
struct sparse g_sparse;
struct behind_pointer g_behind_pointer;

/* BTF has struct dwarf_sock as a forward declaration only (clang writes the target
 * of a member's pointer so); the DWARF has all of it (pping's bpf_sock) */
struct dwarf_sock {
	__u32 family;
	__u32 type;
	__u16 port;
	__u32 mark;
	__u64 cookie;
};

struct ctx_like {
	__u32 len;
	struct dwarf_sock *sk;
};

#ifdef DWARF_SOCK_IN_BTF		/* the whole struct in the BTF too, to compare */
struct dwarf_sock g_dwarf_sock;
#endif

SEC("xdp")
int prog(struct ctx_like *ctx)
{
	struct dwarf_sock *sk = ctx->sk;

	if (!sk)
		return 0;
	return sk->port + g_packed_bits.z;
}

char _license[] SEC("license") = "GPL";
