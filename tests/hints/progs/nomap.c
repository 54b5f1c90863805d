/* An XDP program with BTF but no XSKMAP: `dump --attached` must refuse it (exit 3). */
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int nomap(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
