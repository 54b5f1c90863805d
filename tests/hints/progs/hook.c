/* A user's hints-hook XDP program for `xdphints dump --attached` tests.
 * Two metadata structs, each ending in its own btf_id; chosen by UDP destination
 * port parity; port 7777 gets a btf_id that is not in the BTF (0xdead). Every
 * packet is redirected to the AF_XDP socket of its queue in `xsks` (else XDP_PASS).
 * Built by the tests with: clang -O2 -g -target bpf -c hook.c
 * No libbpf headers needed: the few macros and helpers are declared here. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define bpf_htons(x) __builtin_bswap16(x)
#define bpf_ntohs(x) __builtin_bswap16(x)

static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
static long (*bpf_xdp_adjust_meta)(struct xdp_md *ctx, int delta) = (void *)54;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct xdp_hints_a {
	__u64 stamp;
	__u32 flow;
	__u32 btf_id;
};

struct xdp_hints_b {
	__u16 port;
	__u16 pad;
	__u32 btf_id;
};

#define UNKNOWN_PORT 7777
#define NOT_A_BTF_ID 0xdead

SEC("xdp")
int hook(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u16 port;

	if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	port = bpf_ntohs(udp->dest);

	if (port == UNKNOWN_PORT) {
		if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct xdp_hints_b)))
			return XDP_PASS;
		struct xdp_hints_b *m = (void *)(long)ctx->data_meta;
		if ((void *)(m + 1) > (void *)(long)ctx->data)
			return XDP_PASS;
		m->port = port;
		m->pad = 0x5a5a;
		m->btf_id = NOT_A_BTF_ID;
	} else if (port & 1) {
		if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct xdp_hints_b)))
			return XDP_PASS;
		struct xdp_hints_b *m = (void *)(long)ctx->data_meta;
		if ((void *)(m + 1) > (void *)(long)ctx->data)
			return XDP_PASS;
		m->port = port;
		m->pad = 0;
		m->btf_id = __builtin_btf_type_id(*(struct xdp_hints_b *)0, 0);
	} else {
		if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct xdp_hints_a)))
			return XDP_PASS;
		struct xdp_hints_a *m = (void *)(long)ctx->data_meta;
		if ((void *)(m + 1) > (void *)(long)ctx->data)
			return XDP_PASS;
		m->stamp = 0x1122334455667788ULL;
		m->flow = port;
		m->btf_id = __builtin_btf_type_id(*(struct xdp_hints_a *)0, 0);
	}
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
