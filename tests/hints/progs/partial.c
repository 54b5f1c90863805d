/* A hints hook that leaves every third packet bare: `dump --attached` must show those
 * packets without metadata, never with the bytes an earlier packet left in the frame.
 * Each UDP packet to port 9999 takes the next number of a counter; numbers n % 3 == 2
 * are redirected without metadata, the others carry their number (n + 1, so never 0).
 * Built by the tests with: clang -O2 -g -target bpf -mcpu=v3 -c partial.c */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define bpf_htons(x) __builtin_bswap16(x)

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
static long (*bpf_xdp_adjust_meta)(struct xdp_md *ctx, int delta) = (void *)54;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counter SEC(".maps");

struct xdp_hints_seq {
	__u64 seq;
	__u32 port;
	__u32 btf_id;
};

SEC("xdp")
int partial(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 zero = 0;
	__u64 *cnt, n;

	if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_UDP || udp->dest != bpf_htons(9999))
		return XDP_PASS;
	cnt = bpf_map_lookup_elem(&counter, &zero);
	if (!cnt)
		return XDP_PASS;
	n = __sync_fetch_and_add(cnt, 1);
	if (n % 3 != 2) {
		if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct xdp_hints_seq)))
			return XDP_PASS;
		struct xdp_hints_seq *m = (void *)(long)ctx->data_meta;
		if ((void *)(m + 1) > (void *)(long)ctx->data)
			return XDP_PASS;
		m->seq = n + 1;
		m->port = 9999;
		m->btf_id = __builtin_btf_type_id(*(struct xdp_hints_seq *)0, 0);
	}
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
