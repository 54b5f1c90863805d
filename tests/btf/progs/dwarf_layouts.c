/* Structs whose layout xdphints_cli.btf.dwarf must take from the DWARF exactly as
 * clang's BTF has it. Self-contained: no kernel headers.
 *
 * xdp_meta and xdp_meta_field are those of the kernel selftest
 * tools/testing/selftests/bpf/xdp_metadata.h; kitchen has one of every kind a hints
 * struct may use; both reach BTF through global variables. dwarf_only is used only
 * through a cast of ctx->data_meta, as progs/xdp_hw_metadata.c uses xdp_meta, so
 * clang puts it in the DWARF and not in the BTF. Built with -DXDP_META_DWARF_ONLY,
 * xdp_meta is used that way too, as in the kernel's program.
 */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;

#define SEC(name) __attribute__((section(name), used))
#define BIT(nr) (1 << (nr))

enum xdp_meta_field {
	XDP_META_FIELD_TS	= BIT(0),
	XDP_META_FIELD_RSS	= BIT(1),
	XDP_META_FIELD_VLAN_TAG	= BIT(2),
};

struct xdp_meta {
	union {
		__u64 rx_timestamp;
		__s32 rx_timestamp_err;
	};
	__u64 xdp_timestamp;
	__u32 rx_hash;
	union {
		__u32 rx_hash_type;
		__s32 rx_hash_err;
	};
	union {
		struct {
			__be16 rx_vlan_proto;
			__u16 rx_vlan_tci;
		};
		__s32 rx_vlan_tag_err;
	};
	enum xdp_meta_field hint_valid;
};

enum neg { NEG_A = -3, NEG_B = 5 };
enum big { BIG_A = 1, BIG_B = 0x100000000ULL };
enum small { SMALL_A = 1 } __attribute__((packed));

struct node;
struct inner { __s16 lo; __s16 hi; };

struct kitchen {
	__u8 a;
	__s16 s;
	__u32 bf1: 3, bf2: 13;
	__s64 sbf: 7;
	_Bool flag;
	enum neg e;
	float f;
	double d;
	struct inner in[2];
	__u32 grid[2][3];
	const volatile __u32 cv;
	char name[5];
	signed char sc;
	unsigned char uc;
	struct node *next;
	struct kitchen *self;
	int (*cb)(int, void *);
	void *opaque;
	enum big b;
	enum small sm;
	union { __u32 w; __u8 bytes[4]; struct { __u16 x: 4, y: 12; }; };
	__u64 tail[0];
} __attribute__((aligned(8)));

#ifndef XDP_META_DWARF_ONLY
struct xdp_meta global_meta;
#endif
struct kitchen global_kitchen;

typedef struct { __u16 a; __u8 b; } pair_t;

struct odds {
	pair_t pair;
	int *restrict rp;
	_Atomic __u32 at;
	const char *const *argv;
	__u8 data[];
};

struct odds global_odds;

/* Only ever reached through a local pointer: clang puts it in DWARF but not in BTF. */
struct dwarf_only {
	__u64 stamp;
	union { __u32 hash; __s32 hash_err; };
	__u16 bits: 3, more: 13;
	__u32 btf_like;
};

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

SEC("xdp")
int prog(struct xdp_md *ctx)
{
	struct dwarf_only *m = (void *)(long)ctx->data_meta;
#ifdef XDP_META_DWARF_ONLY
	struct xdp_meta *meta = (void *)(long)ctx->data_meta;

	if ((void *)(meta + 1) > (void *)(long)ctx->data)
		return 2;
	meta->rx_timestamp = 1;
	meta->hint_valid = XDP_META_FIELD_TS;
#endif

	if ((void *)(m + 1) > (void *)(long)ctx->data)
		return 2;
	m->stamp = 1;
	m->bits = 2;
	return 2;
}

char _license[] SEC("license") = "GPL";
