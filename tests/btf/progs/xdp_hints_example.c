/* A BPF object carrying a hints struct, for the BTF engine tests.
 * Self-contained: no kernel headers, so it builds anywhere clang has the bpf target.
 */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef int __s32;

#define SEC(name) __attribute__((section(name), used))

enum hint_flags {
	HINT_TIMESTAMP = 1,
	HINT_HASH = 2,
	HINT_VLAN = 4,
};

struct xdp_hints_example {
	__u64 rx_timestamp;
	__u32 rx_hash;
	enum hint_flags flags;
	__u16 vlan_tci;
	__u16 vlan_proto;
	__u8 has_ts: 1;
	__u8 has_hash: 1;
	__u8 queue: 6;
	__s8 delta;
	char tag[6];
	union {
		__u32 word;
		__u8 bytes[4];
	};
	__s32 signed_bits: 5;
	__u32 btf_id;
};

/* Counts as hints by the trailing-btf_id rule alone. */
struct my_meta {
	__u32 mark;
	__u32 btf_id;
};

/* Not a hints struct: btf_id is not last. */
struct not_hints {
	__u32 btf_id;
	__u32 other;
};

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

struct xdp_hints_example example_hints;
struct my_meta example_meta;
struct not_hints example_not;

SEC("xdp")
int xdp_hints_prog(struct xdp_md *ctx)
{
	struct xdp_hints_example *h = (void *)(long)ctx->data_meta;

	if ((void *)(h + 1) > (void *)(long)ctx->data)
		return 2;
	h->btf_id = 0;
	return 2;
}

char _license[] SEC("license") = "GPL";
